import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const STAMP = join(ROOT, 'dist', '.build-stamp');

/** Newest modification time under `dir` (ms), skipping build output. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'dist' || e.name === 'node_modules') continue;
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/**
 * Many tests drive the built `besh` binary: build it first when `dist/` is older than the
 * sources, so `npx vitest run …` after an edit never tests yesterday's build.
 */
export default function setup(): void {
  const built = existsSync(STAMP) ? statSync(STAMP).mtimeMs : 0;
  if (built >= Math.max(newest(join(ROOT, 'src')), newest(join(ROOT, 'web')))) return;
  process.stdout.write('dist/ is older than src/: building first (npm run build)\n');
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
}
