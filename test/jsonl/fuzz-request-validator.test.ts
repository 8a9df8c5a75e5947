/**
 * Property-based fuzzing of `validateRequestLine` (issue 6, part 5): any text, any JSON value and
 * any near-valid request gives a `ValidationOutcome` (never a throw) whose errors are exactly the
 * problems a table of OpenAI's rules predicts, all carrying the line number they were given; read
 * through `readLines` with random chunking, those numbers are the lines' places in the file.
 */
import { Readable } from 'node:stream';

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { FingerprintSet } from '../../src/jsonl/fingerprint-set.js';
import { readLines } from '../../src/jsonl/line-splitter.js';
import { validateRequestLine, type ValidationContext, type ValidationOutcome } from '../../src/jsonl/request-validator.js';
import { splitAt } from './helpers.js';

/** FUZZ_RUNS=20000 for a deeper local search. */
const RUNS = { numRuns: Number(process.env['FUZZ_RUNS'] ?? 300) };
const ENDPOINTS = ['/v1/chat/completions', '/v1/completions', '/v1/responses', '/v1/embeddings', '/v1/other'];

// ---------------------------------------------------------------------------------------------
// Reference: which (code, param) pairs a line must get. One row per field, from the rules.
// ---------------------------------------------------------------------------------------------

type Problem = [code: string, param: string | null];

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const absent = (v: unknown): boolean => v === undefined || v === null;
const own = (o: Record<string, unknown>, k: string): unknown => (Object.hasOwn(o, k) ? o[k] : undefined);

/** Problems of one line; `seen` holds earlier valid custom_ids and gains this line's if valid and new. */
function expectedProblems(text: string, endpoint: string, maxIdLength: number, seen: Set<string>): Problem[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return [['invalid_json_line', null]];
  }
  if (!isPlainObject(v)) return [['invalid_json_line', null]];
  const out: Problem[] = [];
  const id = own(v, 'custom_id');
  if (absent(id)) out.push(['missing_required_parameter', 'custom_id']);
  else if (typeof id !== 'string' || id.length === 0 || id.length > maxIdLength) out.push(['invalid_request', 'custom_id']);
  else if (seen.has(id)) out.push(['duplicate_custom_id', 'custom_id']);
  else seen.add(id);

  const method = own(v, 'method');
  if (absent(method)) out.push(['missing_required_parameter', 'method']);
  else if (method !== 'POST') out.push(['invalid_request', 'method']);

  const url = own(v, 'url');
  if (absent(url)) out.push(['missing_required_parameter', 'url']);
  else if (url !== endpoint) out.push(['invalid_url', 'url']);

  const body = own(v, 'body');
  if (absent(body)) out.push(['missing_required_parameter', 'body']);
  else if (!isPlainObject(body)) out.push(['invalid_request', 'body']);
  else {
    const model = own(body, 'model');
    if (typeof model !== 'string' || model === '') out.push(['invalid_request', 'body.model']);
    if (own(body, 'stream') === true) out.push(['streaming_unsupported', 'body.stream']);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Inputs: near-valid requests (each field right, missing, null, wrong or random), random JSON,
// and text that is not JSON at all.
// ---------------------------------------------------------------------------------------------

const OMIT = Symbol('omit');
/** `usual` six times out of seven. */
const mostly = <T>(usual: fc.Arbitrary<T>, other: fc.Arbitrary<T>) => fc.oneof({ weight: 6, arbitrary: usual }, { weight: 1, arbitrary: other });
const field = <T>(good: fc.Arbitrary<T>) =>
  fc.oneof(
    { weight: 16, arbitrary: good },
    { weight: 1, arbitrary: fc.constant(OMIT) },
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 1 }) },
  );

/** Few distinct ids, so that duplicates are common. */
const customId = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('a', 'b', 'c', 'é', '\u0000', '𝄞', '') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
);
const body = fc.record(
  {
    model: field(mostly(fc.constantFrom('m', 'gpt-x'), fc.constantFrom('', ' '))),
    stream: fc.oneof(
      { weight: 4, arbitrary: fc.constant(OMIT) },
      { weight: 2, arbitrary: fc.boolean() },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 0 }) },
    ),
    messages: fc.constant([{ role: 'user', content: 'hi' }]),
    extra: fc.jsonValue({ maxDepth: 2 }),
  },
  { requiredKeys: ['model', 'stream'] },
);

/** An object with fields in random order; OMIT leaves the key out. */
const request = (endpoint: string) =>
  fc
    .tuple(
      fc.record({
        custom_id: field(customId),
        method: field(mostly(fc.constant('POST'), fc.constantFrom('GET', 'post', ''))),
        url: field(mostly(fc.constant(endpoint), fc.constantFrom(...ENDPOINTS, `${endpoint}/`))),
        body: field(body),
      }),
      fc.dictionary(fc.constantFrom('__proto__', 'constructor', 'toString', 'extra', 'custom_ID'), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 2 }),
      fc.boolean(),
    )
    .map(([fields, extras, reverse]) => {
      const entries = Object.entries({ ...fields, ...extras });
      if (reverse) entries.reverse();
      return `{${entries
        .filter(([, v]) => v !== OMIT)
        .map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v === OMIT ? null : strip(v))}`)
        .join(',')}}`;
    });

/** Drops OMIT members of nested objects (the body's optional fields). */
function strip(v: unknown): unknown {
  if (!isPlainObject(v)) return v;
  return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== OMIT));
}

const lineText = (endpoint: string) =>
  fc.oneof(
    { weight: 12, arbitrary: request(endpoint) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.tuple(request(endpoint), fc.nat()).map(([t, n]) => t.slice(0, n % (t.length + 1))) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
    { weight: 1, arbitrary: fc.constantFrom('', ' ', '{}', '[]', 'null', '{"custom_id":"a"', '\u00a0{}', `{"body":${'['.repeat(5000)}`) },
  );

const context = fc.record({ endpoint: fc.constantFrom(...ENDPOINTS), maxCustomIdLength: fc.integer({ min: 1, max: 12 }) });

const byJson = (a: unknown, b: unknown): number => JSON.stringify(a).localeCompare(JSON.stringify(b));

/** The outcome as sorted [code, param, line] triples (null when ok). */
function problemsOf(r: ValidationOutcome): [string, string | null, number | null][] | null {
  if (r.ok) return null;
  return r.errors.map((e) => [e.code, e.param, e.line] as [string, string | null, number | null]).sort(byJson);
}

function runLines(texts: string[], ctx: ValidationContext, firstLine = 1): ValidationOutcome[] {
  return texts.map((t, i) => {
    try {
      return validateRequestLine(t, firstLine + i, ctx);
    } catch (err) {
      throw new Error(`validateRequestLine threw on ${JSON.stringify(t).slice(0, 200)}`, { cause: err });
    }
  });
}

// ---------------------------------------------------------------------------------------------

describe('validateRequestLine (fuzz)', () => {
  it('never throws, and reports exactly the predicted problems, each at the given line', () => {
    fc.assert(
      fc.property(
        context.chain((c) => fc.tuple(fc.constant(c), fc.array(lineText(c.endpoint), { minLength: 1, maxLength: 8 }))),
        fc.integer({ min: 1, max: 1e9 }),
        ([{ endpoint, maxCustomIdLength }, texts], firstLine) => {
          const ctx: ValidationContext = { endpoint, maxCustomIdLength, seenCustomIds: new Set<string>() };
          const seen = new Set<string>();
          const got = runLines(texts, ctx, firstLine);
          texts.forEach((t, i) => {
            const r = got[i]!;
            const want = expectedProblems(t, endpoint, maxCustomIdLength, seen);
            const line = firstLine + i;
            if (want.length === 0) {
              expect(r.ok, t).toBe(true);
              if (!r.ok) return;
              const v = JSON.parse(t) as Record<string, any>;
              expect(r.request).toEqual({ customId: v['custom_id'], method: 'POST', url: endpoint, body: v['body'], model: v['body'].model });
            } else {
              const sorted = want.map(([c, p]) => [c, p, line]).sort(byJson);
              expect(problemsOf(r), t).toEqual(sorted);
              if (!r.ok) for (const e of r.errors) expect(e.message.length).toBeGreaterThan(0);
            }
          });
          expect([...(ctx.seenCustomIds as Set<string>)].sort()).toEqual([...seen].sort());
        },
      ),
      RUNS,
    );
  });

  it('finds the same duplicates with a FingerprintSet as with a Set', () => {
    fc.assert(
      fc.property(
        context.chain((c) => fc.tuple(fc.constant(c), fc.array(lineText(c.endpoint), { minLength: 1, maxLength: 12 }))),
        ([{ endpoint, maxCustomIdLength }, texts]) => {
          const withSet = runLines(texts, { endpoint, maxCustomIdLength, seenCustomIds: new Set() }).map(problemsOf);
          const withPrints = runLines(texts, { endpoint, maxCustomIdLength, seenCustomIds: new FingerprintSet(4) }).map(problemsOf);
          expect(withPrints).toEqual(withSet);
        },
      ),
      RUNS,
    );
  });

  it('numbers the errors of a file read with readLines by the lines of a plain split, at any chunking', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(lineText('/v1/chat/completions'), { minLength: 1, maxLength: 10 }),
        fc.constantFrom('\n', '\r\n'),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 6 }),
        async (texts, nl, bom, cuts) => {
          // Texts holding a newline would make more lines than entries; a leading U+FEFF on
          // line 1 would be read as a BOM. Keep the file's lines one-to-one with `texts`.
          const lines = texts.map((t, i) => (i === 0 ? t.replace(/^\uFEFF/, '') : t).replace(/[\r\n]/g, ' '));
          const file = Buffer.from((bom ? '\uFEFF' : '') + lines.join(nl) + nl);
          const chunks = splitAt(file, ...cuts.map((c) => c % (file.length + 1)).sort((a, b) => a - b));
          const ctx = (): ValidationContext => ({ endpoint: '/v1/chat/completions', maxCustomIdLength: 64, seenCustomIds: new Set() });
          const want = runLines(lines, ctx()).map(problemsOf);
          const got: ReturnType<typeof problemsOf>[] = [];
          const c = ctx();
          for await (const raw of readLines(Readable.from(chunks, { objectMode: false }), { maxLineBytes: 1 << 20 })) {
            got.push(problemsOf(validateRequestLine(raw.text, raw.line, c)));
          }
          expect(got).toEqual(want);
        },
      ),
      RUNS,
    );
  });
});
