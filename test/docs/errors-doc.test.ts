import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

/** Codes the server can emit: `code: '…'` literals, JsonlError codes and error-line codes. */
function emittedCodes(): Set<string> {
  const codes = new Set<string>();
  const dirs = ['api', 'domain', 'engine', 'jsonl', 'upstream'].map((d) => join(ROOT, 'src', d));
  for (const file of dirs.flatMap(sources)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\bcode: '([a-z_]+)'/g)) codes.add(m[1]!);
    for (const m of text.matchAll(/errorLine\([^)]*?'([a-z_]+)'/g)) codes.add(m[1]!);
    for (const m of text.matchAll(/#writeUnsent\([^)]*?'([a-z_]+)'/g)) codes.add(m[1]!);
  }
  const jsonlErrors = readFileSync(join(ROOT, 'src', 'jsonl', 'errors.ts'), 'utf8');
  const union = /JsonlErrorCode\s*=([^;]+);/.exec(jsonlErrors)?.[1] ?? '';
  for (const m of union.matchAll(/'([a-z_]+)'/g)) codes.add(m[1]!);
  const outcome = readFileSync(join(ROOT, 'src', 'upstream', 'outcome.ts'), 'utf8');
  const net = /NetworkErrorCode\s*=([^;]+);/.exec(outcome)?.[1] ?? '';
  for (const m of net.matchAll(/'([a-z_]+)'/g)) codes.add(m[1]!);
  return codes;
}

describe('docs/errors.md', () => {
  it('lists every error code the server emits', () => {
    const doc = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');
    const codes = emittedCodes();
    expect(codes.size).toBeGreaterThan(20);
    const missing = [...codes].filter((c) => !doc.includes(`\`${c}\``));
    expect(missing).toEqual([]);
  });
});
