/**
 * Property-based fuzzing of the line rules (issue 6, part 5): `LineScanner`, `readLines` and
 * `UploadChecker` must agree with a plain reference split whatever the bytes and whatever the
 * chunking, and fail only with `JsonlError`s that name the right line.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { JsonlError } from '../../src/jsonl/errors.js';
import { LineScanner } from '../../src/jsonl/line-scanner.js';
import { readLines } from '../../src/jsonl/line-splitter.js';
import { UploadChecker } from '../../src/jsonl/upload-checker.js';
import { collect, splitAt } from './helpers.js';

/** FUZZ_RUNS=20000 for a deeper local search. */
const RUNS = { numRuns: Number(process.env['FUZZ_RUNS'] ?? 250) };
const NO_LIMIT = 1 << 30;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

// ---------------------------------------------------------------------------------------------
// Reference: the documented rules, done the slow and obvious way.
// ---------------------------------------------------------------------------------------------

interface RefLine {
  line: number;
  /** Without '\n', one trailing '\r' and (line 1) the BOM. */
  content: Buffer;
  byteOffset: number;
  byteLength: number;
}

/**
 * Drop a UTF-8 BOM at the very start, cut after every '\n', forget an empty piece after the last
 * '\n', then take the '\n' and one '\r' off the end of each piece. Line 1 owns the BOM's bytes.
 */
function referenceLines(src: Buffer): RefLine[] {
  const bom = src.subarray(0, 3).equals(BOM) ? 3 : 0;
  const pieces: Buffer[] = [];
  let from = bom;
  for (let i = bom; i < src.length; i++) {
    if (src[i] === 0x0a) {
      pieces.push(src.subarray(from, i + 1));
      from = i + 1;
    }
  }
  if (from < src.length) pieces.push(src.subarray(from));
  const out: RefLine[] = [];
  let offset = 0;
  for (const piece of pieces) {
    let content = piece;
    if (content[content.length - 1] === 0x0a) content = content.subarray(0, content.length - 1);
    if (content[content.length - 1] === 0x0d) content = content.subarray(0, content.length - 1);
    const byteLength = piece.length + (out.length === 0 ? bom : 0);
    out.push({ line: out.length + 1, content, byteOffset: offset, byteLength });
    offset += byteLength;
  }
  return out;
}

const show = (l: RefLine) => ({ line: l.line, content: l.content.toString('hex'), byteOffset: l.byteOffset, byteLength: l.byteLength });

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lenientUtf8 = new TextDecoder('utf-8', { ignoreBOM: true });

function decodeStrict(b: Buffer): string | null {
  try {
    return fatalUtf8.decode(b);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Inputs: random bytes, bytes from a vocabulary of troublemakers, and JSONL-shaped files.
// ---------------------------------------------------------------------------------------------

const TROUBLE_BYTES = [0x0a, 0x0d, 0x20, 0x09, 0xef, 0xbb, 0xbf, 0x7b, 0x7d, 0x22, 0x3a, 0x31, 0x61, 0xc3, 0xa9, 0x80, 0xff, 0xed, 0xa0, 0x00];

const rawBytes = fc
  .array(fc.oneof(fc.constantFrom(...TROUBLE_BYTES), fc.integer({ min: 0, max: 255 })), { maxLength: 200 })
  .map((a) => Buffer.from(a));

const TOKENS: Buffer[] = [
  ...['\n', '\n', '\r\n', '\r', ' ', '\t', '{}', '{"a":"é€𝄞"}', '[1]', 'null', '"x"', '{', 'x', '\uFEFF'].map((s) => Buffer.from(s)),
  Buffer.from([0xff]), // never valid
  Buffer.from([0xc3]), // truncated 2-byte sequence
  Buffer.from([0xe2, 0x82]), // truncated 3-byte sequence
  Buffer.from([0xed, 0xa0, 0x80]), // UTF-16 surrogate
  Buffer.from([0xc0, 0xaf]), // overlong
  Buffer.from([0xf4, 0x90, 0x80, 0x80]), // above U+10FFFF
  Buffer.from([0xef, 0xbb]), // partial BOM
];
const heads = fc.constantFrom(Buffer.alloc(0), BOM, BOM.subarray(0, 2), Buffer.concat([BOM, BOM]));
const tokenBytes = fc
  .tuple(heads, fc.array(fc.constantFrom(...TOKENS), { maxLength: 40 }))
  .map(([head, tokens]) => Buffer.concat([head, ...tokens]));

/** A JSON object, on one line (JSON.stringify escapes control characters). */
const objectLine = fc
  .dictionary(fc.string({ unit: 'binary', maxLength: 4 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 })
  .map((o) => JSON.stringify(o));

/** One line of a JSONL file, mostly JSON objects, sometimes something a checker must refuse. */
const jsonlLine = fc.oneof(
  { weight: 8, arbitrary: objectLine },
  { weight: 3, arbitrary: fc.constantFrom('', '', ' ', '\t', ' \r', '\r', '\t \r') },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.tuple(fc.jsonValue({ maxDepth: 2 }), fc.nat()).map(([v, n]) => JSON.stringify({ v }).slice(0, n % 20)) },
  { weight: 1, arbitrary: fc.constantFrom('{"a":1}ü', '\u00a0{"a":1}', '{"a":"\u0080\u2028\ufeff"}', '\ufeff{}', '{"a":"\\u0000"} ') },
);

/** JSONL-shaped bytes: lines with '\n' or '\r\n', maybe a BOM, maybe trailing blank lines, maybe one corrupted byte. */
const jsonlBytes = fc
  .record({
    bom: fc.boolean(),
    lines: fc.array(fc.tuple(jsonlLine, fc.constantFrom('\n', '\n', '\r\n')), { maxLength: 12 }),
    last: fc.constantFrom('', '\n', '\r\n'),
    trailing: fc.array(fc.constantFrom('\n', '\r\n', ' \n', '\t\r\n'), { maxLength: 3 }),
    corrupt: fc.oneof(
      { weight: 3, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.tuple(fc.nat(), fc.oneof(fc.constantFrom(...TROUBLE_BYTES), fc.integer({ min: 0, max: 255 }))) },
    ),
  })
  .map(({ bom, lines, last, trailing, corrupt }) => {
    let text = lines.map(([l, nl]) => l + nl).join('');
    if (text.length > 0 && last !== '\n') text = text.replace(/\r?\n$/, last);
    const buf = Buffer.concat([bom ? BOM : Buffer.alloc(0), Buffer.from(text + trailing.join(''))]);
    if (corrupt !== null && buf.length > 0) buf[corrupt[0] % buf.length] = corrupt[1];
    return buf;
  });

const anyBytes = fc.oneof({ weight: 1, arbitrary: rawBytes }, { weight: 1, arbitrary: tokenBytes }, { weight: 3, arbitrary: jsonlBytes });

/** Cut points (mapped into the buffer), or one chunk per byte. Repeated cuts give empty chunks. */
const chunking = fc.oneof({ weight: 4, arbitrary: fc.array(fc.nat(), { maxLength: 8 }) }, { weight: 1, arbitrary: fc.constant('bytewise' as const) });

function chunk(buf: Buffer, how: number[] | 'bytewise'): Buffer[] {
  if (how === 'bytewise') return Array.from(buf, (_, i) => buf.subarray(i, i + 1));
  return splitAt(buf, ...how.map((c) => c % (buf.length + 1)).sort((a, b) => a - b));
}

const lineLimit = fc.oneof({ weight: 2, arbitrary: fc.constant(NO_LIMIT) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 60 }) });

/** Index of the first reference line whose content is over `max`, or -1. */
const firstTooLong = (ref: RefLine[], max: number): number => ref.findIndex((l) => l.content.length > max);

// ---------------------------------------------------------------------------------------------

function runScanner(chunks: Buffer[], max: number): { lines: RefLine[]; error: unknown; scanner: LineScanner } {
  const scanner = new LineScanner(max);
  const lines: RefLine[] = [];
  const sink = (buf: Buffer, start: number, end: number, line: number, byteOffset: number, byteLength: number): void => {
    // Copy: the scanner may reuse `buf` after the call.
    lines.push({ line, content: Buffer.from(buf.subarray(start, end)), byteOffset, byteLength });
  };
  try {
    for (const c of chunks) scanner.push(c, sink);
    scanner.end(sink);
  } catch (error) {
    return { lines, error, scanner };
  }
  return { lines, error: null, scanner };
}

describe('LineScanner (fuzz)', () => {
  it('emits the reference lines, numbers and byte ranges whatever the chunking; line_too_long names the first long line', () => {
    fc.assert(
      fc.property(anyBytes, chunking, lineLimit, (buf, how, max) => {
        const ref = referenceLines(buf);
        const bad = firstTooLong(ref, max);
        const got = runScanner(chunk(buf, how), max);
        if (bad === -1) {
          expect(got.error).toBeNull();
          expect(got.lines.map(show)).toEqual(ref.map(show));
          expect(got.scanner.line).toBe(ref.length);
          expect(got.scanner.totalBytes).toBe(buf.length);
          expect(got.scanner.completeBytes).toBe(ref.reduce((n, l) => n + l.byteLength, 0));
        } else {
          expect(got.error).toBeInstanceOf(JsonlError);
          expect(got.error).toMatchObject({ code: 'line_too_long', line: bad + 1 });
          expect(got.lines.map(show)).toEqual(ref.slice(0, bad).map(show));
        }
      }),
      RUNS,
    );
  });

  it('accounts for every source byte: the byteLengths add up to the source size (a lone BOM is no line)', () => {
    fc.assert(
      fc.property(anyBytes, chunking, (buf, how) => {
        const got = runScanner(chunk(buf, how), NO_LIMIT);
        const loneBom = buf.equals(BOM);
        expect(got.lines.reduce((n, l) => n + l.byteLength, 0)).toBe(loneBom ? 0 : buf.length);
      }),
      RUNS,
    );
  });

  it('splits LF and CRLF text into the same lines, and strips a leading BOM only once', () => {
    const lineText = fc.string({ unit: 'binary', maxLength: 6 }).map((s) => s.replace(/[\r\n]/g, ''));
    fc.assert(
      fc.property(fc.array(lineText, { maxLength: 8 }), fc.boolean(), fc.boolean(), chunking, (lines, bom, finalNl, how) => {
        // Written straight from the texts: a final piece that is empty is not a line.
        const expected = !finalNl && lines.at(-1) === '' ? lines.slice(0, -1) : lines;
        const want = expected.map((t, i) => [i + 1, Buffer.from(i === 0 && !bom ? t.replace(/^\uFEFF/, '') : t).toString('hex')]);
        for (const nl of ['\n', '\r\n']) {
          const text = lines.join(nl) + (finalNl && lines.length > 0 ? nl : '');
          const buf = Buffer.concat([bom ? BOM : Buffer.alloc(0), Buffer.from(text)]);
          const got = runScanner(chunk(buf, how), NO_LIMIT);
          expect(got.error).toBeNull();
          expect(got.lines.map((l) => [l.line, l.content.toString('hex')])).toEqual(want);
        }
      }),
      RUNS,
    );
  });
});

describe('readLines (fuzz)', () => {
  it('yields the reference lines as UTF-8 text (U+FFFD for bad bytes), then throws only a typed line_too_long', async () => {
    await fc.assert(
      fc.asyncProperty(anyBytes, chunking, lineLimit, async (buf, how, max) => {
        const ref = referenceLines(buf);
        const bad = firstTooLong(ref, max);
        const want = (bad === -1 ? ref : ref.slice(0, bad)).map((l) => ({
          line: l.line,
          text: lenientUtf8.decode(l.content),
          byteOffset: l.byteOffset,
          byteLength: l.byteLength,
        }));
        const got: unknown[] = [];
        let error: unknown = null;
        try {
          for await (const l of readLines(Readable.from(chunk(buf, how), { objectMode: false }), { maxLineBytes: max })) got.push(l);
        } catch (e) {
          error = e;
        }
        expect(got).toEqual(want);
        if (bad === -1) expect(error).toBeNull();
        else {
          expect(error).toBeInstanceOf(JsonlError);
          expect(error).toMatchObject({ code: 'line_too_long', line: bad + 1 });
        }
      }),
      RUNS,
    );
  });

  it('reads back every line of a JSONL file at its own number', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(jsonlLine, { minLength: 1, maxLength: 15 }), fc.constantFrom('\n', '\r\n'), chunking, async (lines, nl, how) => {
        const clean = lines.map((l) => l.replace(/[\r\n]/g, ''));
        const buf = Buffer.from(clean.join(nl) + nl);
        const got = await collect(readLines(Readable.from(chunk(buf, how), { objectMode: false }), { maxLineBytes: NO_LIMIT }));
        // A line 1 that starts with U+FEFF starts the file with a BOM, which is not content.
        expect(got.map((l) => [l.line, l.text])).toEqual(clean.map((t, i) => [i + 1, i === 0 ? t.replace(/^\uFEFF/, '') : t]));
      }),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------------------------

type Outcome = { ok: true; lines: number } | { ok: false; code: string; line: number | null };

/**
 * What `UploadChecker` must decide, from its documented rules applied to the reference lines in
 * order: each line is first checked for length, then UTF-8; a blank line (JSON whitespace only)
 * is an error at the first blank line of its run as soon as a non-blank line follows it; with
 * `requireJson` a non-blank line must be a JSON object; no non-blank line at all is `empty_file`.
 */
function expectedUpload(buf: Buffer, max: number, requireJson: boolean): Outcome {
  let firstBlank: number | null = null;
  let lines = 0;
  for (const l of referenceLines(buf)) {
    if (l.content.length > max) return { ok: false, code: 'line_too_long', line: l.line };
    const text = decodeStrict(l.content);
    if (text === null) return { ok: false, code: 'invalid_utf8', line: l.line };
    if (/^[ \t\r\n]*$/.test(text)) {
      firstBlank ??= l.line;
      continue;
    }
    if (firstBlank !== null) return { ok: false, code: 'blank_line', line: firstBlank };
    lines++;
    if (!requireJson) continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return { ok: false, code: 'invalid_json_line', line: l.line };
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, code: 'invalid_json_line', line: l.line };
  }
  return lines === 0 ? { ok: false, code: 'empty_file', line: null } : { ok: true, lines };
}

async function runChecker(chunks: Buffer[], max: number, requireJson: boolean) {
  const checker = new UploadChecker({ maxLineBytes: max, requireJson });
  const out: Buffer[] = [];
  let error: unknown = null;
  try {
    await pipeline(Readable.from(chunks, { objectMode: false }), checker, async (src: AsyncIterable<Buffer>) => {
      for await (const c of src) out.push(c);
    });
  } catch (e) {
    error = e;
  }
  return { checker, error, out: Buffer.concat(out) };
}

describe('UploadChecker (fuzz)', () => {
  it('passes exactly the files the reference accepts, byte for byte, else names the reference line', async () => {
    await fc.assert(
      fc.asyncProperty(anyBytes, chunking, lineLimit, fc.boolean(), async (buf, how, max, requireJson) => {
        const want = expectedUpload(buf, max, requireJson);
        const got = await runChecker(chunk(buf, how), max, requireJson);
        if (want.ok) {
          expect(got.error).toBeNull();
          expect(got.checker.lines).toBe(want.lines);
          expect(got.checker.bytes).toBe(buf.length);
          expect(got.out.equals(buf)).toBe(true);
        } else {
          expect(got.error).toBeInstanceOf(JsonlError);
          expect(got.error).toMatchObject({ code: want.code, line: want.line });
          expect((got.error as JsonlError).message).toContain(want.line === null ? 'file' : `Line ${want.line}`);
        }
      }),
      RUNS,
    );
  });

  it('accepts well-formed JSONL with CRLF, a BOM and trailing blank lines, counting its lines', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(objectLine, { minLength: 1, maxLength: 10 }),
        fc.constantFrom('\n', '\r\n'),
        fc.boolean(),
        fc.constantFrom('', '\n', '\r\n', '\n\n', '\r\n \r\n\t\n'),
        chunking,
        async (lines, nl, bom, tail, how) => {
          const buf = Buffer.concat([bom ? BOM : Buffer.alloc(0), Buffer.from(lines.join(nl) + tail)]);
          const got = await runChecker(chunk(buf, how), NO_LIMIT, true);
          expect(got.error).toBeNull();
          expect(got.checker.lines).toBe(lines.length);
          expect(got.out.equals(buf)).toBe(true);
        },
      ),
      RUNS,
    );
  });

  it('names the line of a lone invalid UTF-8 sequence planted in a good file', async () => {
    const badSeq = fc.constantFrom(...TOKENS.slice(-7, -1));
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 12 }), fc.nat(), badSeq, fc.boolean(), chunking, async (n, at, seq, requireJson, how) => {
        const target = (at % n) + 1;
        const lines = Array.from({ length: n }, (_, i) =>
          i + 1 === target ? Buffer.concat([Buffer.from(`{"n":${i},"s":"é`), seq, Buffer.from('"}\r\n')]) : Buffer.from(`{"n":${i},"s":"€"}\n`),
        );
        const got = await runChecker(chunk(Buffer.concat(lines), how), NO_LIMIT, requireJson);
        expect(got.error).toBeInstanceOf(JsonlError);
        expect(got.error).toMatchObject({ code: 'invalid_utf8', line: target });
      }),
      RUNS,
    );
  });
});
