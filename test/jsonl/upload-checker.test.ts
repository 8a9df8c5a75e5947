import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { JsonlError } from '../../src/jsonl/errors.js';
import { UploadChecker } from '../../src/jsonl/upload-checker.js';
import { splitAt, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => ({ dir, cleanup } = await tempDir()));
afterAll(() => cleanup());

/** Runs bytes through a checker into a sink, returns the checker or the error. */
async function check(input: Buffer | string, opts = { maxLineBytes: 1000, requireJson: true }, cuts: number[] = []) {
  const buf = typeof input === 'string' ? Buffer.from(input) : input;
  const checker = new UploadChecker(opts);
  const out: Buffer[] = [];
  try {
    await pipeline(Readable.from(splitAt(buf, ...cuts), { objectMode: false }), checker, async (src: AsyncIterable<Buffer>) => {
      for await (const c of src) out.push(c);
    });
  } catch (err) {
    return { checker, err: err as JsonlError, out: Buffer.concat(out) };
  }
  return { checker, err: null, out: Buffer.concat(out) };
}

const good = '{"custom_id":"a","body":{"x":"ü"}}\r\n{"custom_id":"b"}\n  {"custom_id":"c"}  \n{"last":true}';

describe('UploadChecker', () => {
  it('passes a good file through byte-exact (real files) and counts lines and bytes', async () => {
    const src = join(dir, 'in.jsonl');
    const dst = join(dir, 'out.jsonl');
    const body = Buffer.from(`\uFEFF${good}\n\n \n`);
    const big = Buffer.from(`${'{"custom_id":"é","n":12345}\r\n'.repeat(5000)}{"end":1}\n\n`);
    for (const content of [body, big]) {
      await writeFile(src, content);
      const checker = new UploadChecker({ maxLineBytes: 1000, requireJson: true });
      await pipeline(createReadStream(src, { highWaterMark: 997 }), checker, createWriteStream(dst));
      expect((await readFile(dst)).equals(content)).toBe(true);
      expect(checker.bytes).toBe(content.length);
      expect(checker.lines).toBe(content === big ? 5001 : 4);
    }
    const r = await check(body);
    expect(r.err).toBeNull();
    expect(r.checker.lines).toBe(4);
  });

  it('allows any number of trailing blank lines', async () => {
    for (const tail of ['\n', '\n\n', '\n\n\n', '\n  \n\t\n', '\r\n\r\n']) {
      const r = await check(`{"a":1}${tail}`);
      expect(r.err, JSON.stringify(tail)).toBeNull();
      expect(r.checker.lines).toBe(1);
    }
  });

  it('rejects a blank line in the middle with its line number', async () => {
    for (const [input, line] of [
      ['{"a":1}\n\n{"a":2}\n', 2],
      ['\n{"a":1}\n', 1],
      ['{"a":1}\n{"a":1}\n  \n\n{"a":2}', 3],
    ] as const) {
      const r = await check(input);
      expect(r.err).toBeInstanceOf(JsonlError);
      expect(r.err).toMatchObject({ code: 'blank_line', line });
      expect(r.err?.message).toBe(`Line ${line} is empty; every line must be one JSON request`.concat('.'));
    }
  });

  it('names the first bad JSON line, at every chunking', async () => {
    const input = '{"a":1}\n{"a":2}\n{"a":\n{"a":4}\n';
    for (let cut = 0; cut <= input.length; cut++) {
      const r = await check(input, undefined, [cut]);
      expect(r.err).toMatchObject({ code: 'invalid_json_line', line: 3 });
      expect(r.err?.message).toMatch(/^Line 3 is not valid JSON: /);
    }
  });

  it('truncates long parser messages', async () => {
    const r = await check(`{"a":${'1'.repeat(600)}x}\n`, { maxLineBytes: 10_000, requireJson: true });
    expect(r.err?.code).toBe('invalid_json_line');
    expect(r.err!.message.length).toBeLessThan(260);
  });

  it('rejects lines that are JSON but not objects', async () => {
    for (const line of ['[1,2]', 'null', '42', '"str"', 'true']) {
      const r = await check(`{"a":1}\n${line}\n`);
      expect(r.err, line).toMatchObject({ code: 'invalid_json_line', line: 2 });
    }
  });

  it('checks only UTF-8 and blank lines without requireJson', async () => {
    const r = await check('not json\n[1]\n', { maxLineBytes: 100, requireJson: false });
    expect(r.err).toBeNull();
    expect(r.checker.lines).toBe(2);
  });

  it('rejects a torn final line', async () => {
    const r = await check('{"a":1}\n{"a":');
    expect(r.err).toMatchObject({ code: 'invalid_json_line', line: 2 });
  });

  it('rejects invalid UTF-8 with the line number, also when split across chunks', async () => {
    const bad = Buffer.concat([Buffer.from('{"a":1}\n{"a":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]);
    for (let cut = 0; cut <= bad.length; cut++) {
      const r = await check(bad, { maxLineBytes: 100, requireJson: false }, [cut]);
      expect(r.err).toMatchObject({ code: 'invalid_utf8', line: 2 });
    }
    const overlong = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]); // surrogate
    expect((await check(overlong)).err).toMatchObject({ code: 'invalid_utf8', line: 1 });
    const good = Buffer.from('{"a":"€𝄞"}\n');
    for (let cut = 0; cut <= good.length; cut++) expect((await check(good, undefined, [cut])).err).toBeNull();
  });

  it('rejects a too long line', async () => {
    const r = await check(`{"a":1}\n{"a":"${'x'.repeat(100)}"}\n`, { maxLineBytes: 50, requireJson: true });
    expect(r.err).toMatchObject({ code: 'line_too_long', line: 2 });
  });

  it('rejects empty files: 0 bytes, whitespace only, BOM only', async () => {
    for (const input of [Buffer.alloc(0), Buffer.from('\n'), Buffer.from(' \n\n\t'), Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('\uFEFF\n')]) {
      const r = await check(input);
      expect(r.err, JSON.stringify(input.toString())).toMatchObject({ code: 'empty_file', line: null });
    }
  });

  it('accepts any non-ASCII text inside strings and rejects it outside', async () => {
    const inside = ['ü€𝄞', '\u0080\u009f\u00a0\u00ff', '\u2028\u2029', '\ufeff', '日本語'];
    for (const t of inside) expect((await check(`${JSON.stringify({ [t]: t })}\n`)).err, t).toBeNull();
    for (const t of ['{"a":1}ü', '\u00a0{"a":1}', '{"a":1}\ufeff', '{"a":1,"\u00ff":}']) {
      const r = await check(`{"ok":1}\n${t}\n`);
      expect(r.err, t).toMatchObject({ code: 'invalid_json_line', line: 2 });
      expect(r.err?.message).not.toContain('Ã'); // parser message from the UTF-8 text
    }
  });

  it('agrees with a per-line reference on random input and random chunking', async () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pieces = [Buffer.from('{"a":"x"}'), Buffer.from('{"b":"é€𝄞"}'), Buffer.from('{"c":[1,2]}'), Buffer.from('[1]'), Buffer.from('{"d":'), Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]), Buffer.from('{"e":"\xe2\x82"}', 'latin1'), Buffer.from('')];
    const fatal = new TextDecoder('utf-8', { fatal: true });
    for (let round = 0; round < 300; round++) {
      const n = 1 + rnd(6);
      const lines = Array.from({ length: n }, () => pieces[rnd(10) < 8 ? rnd(3) : rnd(pieces.length)]!);
      const buf = Buffer.concat(lines.flatMap((l) => [l, Buffer.from(rnd(4) === 0 ? '\r\n' : '\n')]));
      // Reference: first failing line, in line order, with the same rules.
      let want: { code: string; line: number | null } | null = null;
      let firstBlank: number | null = null;
      let nonBlank = 0;
      for (let i = 0; i < lines.length && want === null; i++) {
        const l = lines[i]!;
        let text: string;
        try {
          text = fatal.decode(l);
        } catch {
          want = { code: 'invalid_utf8', line: i + 1 };
          break;
        }
        if (text.trim() === '') {
          firstBlank ??= i + 1;
          continue;
        }
        if (firstBlank !== null) want = { code: 'blank_line', line: firstBlank };
        else {
          nonBlank++;
          try {
            const v: unknown = JSON.parse(text);
            if (typeof v !== 'object' || v === null || Array.isArray(v)) want = { code: 'invalid_json_line', line: i + 1 };
          } catch {
            want = { code: 'invalid_json_line', line: i + 1 };
          }
        }
      }
      if (want === null && nonBlank === 0) want = { code: 'empty_file', line: null };
      const cuts = Array.from({ length: rnd(4) }, () => rnd(buf.length + 1)).sort((a, b) => a - b);
      const r = await check(buf, undefined, cuts);
      const got = r.err === null ? null : { code: r.err.code, line: r.err.line };
      expect(got, `${JSON.stringify(buf.toString('latin1'))} cuts ${cuts.join(',')}`).toEqual(want);
      if (r.err === null) expect(r.out.equals(buf)).toBe(true);
    }
  });
});
