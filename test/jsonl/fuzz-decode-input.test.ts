/**
 * Property-based fuzzing of `decodeInput` (issue 6, part 5): gzip (single or multi-member, split
 * into random chunks, truncated, corrupted or followed by extra bytes) and plain input. The outcome
 * is either the right bytes or a `JsonlError` with the documented code; never another error, never
 * a hang. `decodeInput` looks only at the bytes, never at a file name, so "plain content named .gz"
 * and "gzip named .jsonl" are the plain and gzip cases below.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { JsonlError } from '../../src/jsonl/errors.js';
import { decodeInput } from '../../src/jsonl/open-input.js';
import { UploadChecker } from '../../src/jsonl/upload-checker.js';
import { splitAt } from './helpers.js';

/** FUZZ_RUNS=5000 for a deeper local search. A run that takes over 5 s counts as a hang. */
const RUNS = { numRuns: Number(process.env['FUZZ_RUNS'] ?? 150), timeout: 5000 };
const NO_CAP = 1 << 30;

// ---------------------------------------------------------------------------------------------

const randomBytes = (maxLength: number) =>
  fc.array(fc.oneof(fc.constantFrom(0x00, 0x0a, 0x1f, 0x8b, 0x7b, 0xff), fc.integer({ min: 0, max: 255 })), { maxLength }).map((a) => Buffer.from(a));

/** Decompressed content: random bytes, or compressible text (long outputs from short inputs). */
const content = fc.oneof(
  randomBytes(600),
  fc.tuple(fc.string({ unit: 'binary', maxLength: 20 }), fc.integer({ min: 0, max: 400 })).map(([s, n]) => Buffer.from(s.repeat(n))),
);

/** One or more gzip members, each with its own compression level. */
const members = fc.array(fc.tuple(content, fc.integer({ min: 0, max: 9 })), { minLength: 1, maxLength: 4 }).map((ms) => {
  const parts = ms.map(([data, level]) => ({ data, gz: gzipSync(data, { level }) }));
  const gz = Buffer.concat(parts.map((p) => p.gz));
  const data = Buffer.concat(parts.map((p) => p.data));
  /** Offsets in `gz` where a member ends. */
  const ends: number[] = [];
  let at = 0;
  for (const p of parts) ends.push((at += p.gz.length));
  /** Decompressed bytes of the first k members, for each k. */
  const prefixes = parts.map((_, k) => Buffer.concat(parts.slice(0, k + 1).map((p) => p.data)));
  return { gz, data, ends, prefixes };
});

const chunking = fc.oneof({ weight: 4, arbitrary: fc.array(fc.nat(), { maxLength: 8 }) }, { weight: 1, arbitrary: fc.constant('small' as const) });

/** Random cut points, or chunks of 1 to 7 bytes. */
function chunk(buf: Buffer, how: number[] | 'small'): Buffer[] {
  if (how === 'small') {
    const out: Buffer[] = [];
    for (let i = 0, n = 1; i < buf.length; i += n, n = (n % 7) + 1) out.push(buf.subarray(i, i + n));
    return out;
  }
  return splitAt(buf, ...how.map((c) => c % (buf.length + 1)).sort((a, b) => a - b));
}

const isGzipMagic = (b: Buffer): boolean => b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;

async function decode(chunks: Buffer[], maxDecompressedBytes: number): Promise<{ out: Buffer; error: unknown }> {
  const out: Buffer[] = [];
  try {
    for await (const c of decodeInput(Readable.from(chunks, { objectMode: false }), { maxDecompressedBytes })) out.push(c as Buffer);
  } catch (error) {
    return { out: Buffer.concat(out), error };
  }
  return { out: Buffer.concat(out), error: null };
}

function expectJsonlError(error: unknown, code: string): void {
  expect(error).toBeInstanceOf(JsonlError);
  expect(error).toMatchObject({ code, line: null });
}

// ---------------------------------------------------------------------------------------------

describe('decodeInput (fuzz)', () => {
  it('passes plain bytes through unchanged, whatever the chunking and the cap (e.g. plain text named .gz)', async () => {
    const plain = fc
      .tuple(fc.constantFrom([], [0x1f], [0x1f, 0x8a], [0x1f, 0x1f], [0x8b, 0x1f], [0x1f, 0x0a]), randomBytes(400))
      .map(([head, rest]) => Buffer.concat([Buffer.from(head), rest]))
      .filter((b) => !isGzipMagic(b));
    await fc.assert(
      fc.asyncProperty(plain, chunking, fc.integer({ min: 0, max: 100 }), async (buf, how, cap) => {
        const got = await decode(chunk(buf, how), cap);
        expect(got.error).toBeNull();
        expect(got.out.equals(buf)).toBe(true);
      }),
      RUNS,
    );
  });

  it('gunzips single- and multi-member gzip split anywhere (e.g. gzip named .jsonl)', async () => {
    await fc.assert(
      fc.asyncProperty(members, chunking, async ({ gz, data }, how) => {
        const got = await decode(chunk(gz, how), NO_CAP);
        expect(got.error).toBeNull();
        expect(got.out.equals(data)).toBe(true);
      }),
      RUNS,
    );
  });

  it('fails with decompressed_too_large exactly when the output passes the cap, having given at most the cap', async () => {
    await fc.assert(
      fc.asyncProperty(members, chunking, fc.nat(), async ({ gz, data }, how, c) => {
        const cap = c % (data.length + 16);
        const got = await decode(chunk(gz, how), cap);
        if (data.length > cap) {
          expectJsonlError(got.error, 'decompressed_too_large');
          expect(got.out.length).toBeLessThanOrEqual(cap);
          expect(got.out.equals(data.subarray(0, got.out.length))).toBe(true);
        } else {
          expect(got.error).toBeNull();
          expect(got.out.equals(data)).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it('fails truncated gzip with invalid_gzip, unless it is cut at a member boundary or before the magic', async () => {
    await fc.assert(
      fc.asyncProperty(members, fc.nat(), chunking, async ({ gz, ends, prefixes }, p, how) => {
        const cut = p % gz.length;
        const buf = gz.subarray(0, cut);
        const got = await decode(chunk(buf, how), NO_CAP);
        const member = ends.indexOf(cut);
        if (cut < 2) {
          expect(got.error).toBeNull(); // too short to be gzip: passed through as it is
          expect(got.out.equals(buf)).toBe(true);
        } else if (member !== -1) {
          expect(got.error).toBeNull();
          expect(got.out.equals(prefixes[member]!)).toBe(true);
        } else expectJsonlError(got.error, 'invalid_gzip');
      }),
      RUNS,
    );
  });

  it('fails gzip followed by bytes that are not gzip with invalid_gzip (zero padding is tolerated)', async () => {
    const extra = fc.oneof(
      randomBytes(40).filter((b) => b.length > 0),
      fc.tuple(fc.integer({ min: 1, max: 6 }), randomBytes(20)).map(([zeros, rest]) => Buffer.concat([Buffer.alloc(zeros), rest])),
      fc.tuple(fc.nat({ max: 12 }), randomBytes(12)).map(([n, rest]) => Buffer.concat([gzipSync('x').subarray(0, n), rest])),
    );
    await fc.assert(
      fc.asyncProperty(members, extra, chunking, async ({ gz, data }, tail, how) => {
        const got = await decode(chunk(Buffer.concat([gz, tail]), how), NO_CAP);
        if (tail.every((b) => b === 0)) {
          expect(got.error).toBeNull();
          expect(got.out.equals(data)).toBe(true);
        } else expectJsonlError(got.error, 'invalid_gzip');
      }),
      RUNS,
    );
  });

  it('regression: a member, a 0x00 byte, then more data is invalid_gzip, not the first member alone', async () => {
    // Found by the property above: Node's gunzip stops quietly at the 0x00 and drops the rest.
    const a = gzipSync('{"custom_id":"a"}\n');
    const b = gzipSync('{"custom_id":"b"}\n');
    for (const chunks of [[Buffer.concat([a, Buffer.from([0]), b])], [a, Buffer.from([0]), b], [a, Buffer.from([0, 0]), Buffer.from([1])]]) {
      expectJsonlError((await decode(chunks, NO_CAP)).error, 'invalid_gzip');
    }
    const padded = await decode([a, Buffer.alloc(3), Buffer.alloc(5)], NO_CAP);
    expect(padded.error).toBeNull();
    expect(padded.out.toString()).toBe('{"custom_id":"a"}\n');
  });

  it('never turns corrupt gzip into wrong bytes: the original content, invalid_gzip, or pass-through once the magic is gone', async () => {
    const edits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 });
    await fc.assert(
      fc.asyncProperty(members, edits, chunking, async ({ gz, data }, changes, how) => {
        const bad = Buffer.from(gz);
        for (const [at, value] of changes) bad[at % bad.length] = value;
        const got = await decode(chunk(bad, how), NO_CAP);
        if (!isGzipMagic(bad)) {
          expect(got.error).toBeNull();
          expect(got.out.equals(bad)).toBe(true);
        } else if (got.error === null) expect(got.out.equals(data)).toBe(true);
        else expectJsonlError(got.error, 'invalid_gzip');
      }),
      RUNS,
    );
  });

  it('feeds UploadChecker so that any input, gzipped or not, ends in success or a JsonlError', async () => {
    const jsonl = fc
      .array(fc.oneof(fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify({ v })), fc.constantFrom('', '[1]', '{', '\u00ff')), { maxLength: 20 })
      .map((ls) => Buffer.from(ls.map((l) => `${l}\n`).join('')));
    const input = fc.tuple(fc.oneof(jsonl, randomBytes(300)), fc.boolean()).map(([data, zip]) => ({ data, bytes: zip ? gzipSync(data) : data, zip }));
    await fc.assert(
      fc.asyncProperty(input, chunking, fc.integer({ min: 0, max: 3000 }), async ({ data, bytes, zip }, how, cap) => {
        const checker = new UploadChecker({ maxLineBytes: 200, requireJson: true });
        let written = 0;
        const sink = new Writable({
          write(c: Buffer, _enc, cb) {
            written += c.length;
            cb();
          },
        });
        const decoded = decodeInput(Readable.from(chunk(bytes, how), { objectMode: false }), { maxDecompressedBytes: cap });
        const error: unknown = await pipeline(decoded, checker, sink).then(
          () => null,
          (e: unknown) => e,
        );
        if (error === null) {
          expect(written).toBe(data.length);
          expect(checker.bytes).toBe(data.length);
          if (zip) expect(data.length).toBeLessThanOrEqual(cap);
        } else {
          expect(error).toBeInstanceOf(JsonlError);
          if ((error as JsonlError).code === 'decompressed_too_large') expect(zip && data.length > cap).toBe(true);
        }
      }),
      RUNS,
    );
  });
});
