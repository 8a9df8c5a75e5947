import { describe, expect, it } from 'vitest';

import { MAX_CUSTOM_ID_LENGTH, validateRequestLine, type ValidationContext } from '../../src/jsonl/request-validator.js';

const EP = '/v1/chat/completions';
const ctx = (): ValidationContext => ({ endpoint: EP, seenCustomIds: new Set(), maxCustomIdLength: MAX_CUSTOM_ID_LENGTH });
const line = (o: Record<string, unknown>): string => JSON.stringify(o);
const ok = { custom_id: 'r1', method: 'POST', url: EP, body: { model: 'm', messages: [] } };

function errorsOf(text: string, n = 7, c = ctx()) {
  const r = validateRequestLine(text, n, c);
  if (r.ok) throw new Error('expected errors');
  return r.errors;
}

describe('validateRequestLine', () => {
  it('accepts a good line and remembers its custom_id', () => {
    const c = ctx();
    const r = validateRequestLine(line(ok), 1, c);
    expect(r).toEqual({ ok: true, request: { customId: 'r1', method: 'POST', url: EP, body: ok.body, model: 'm' } });
    expect(c.seenCustomIds.has('r1')).toBe(true);
    expect(MAX_CUSTOM_ID_LENGTH).toBe(512);
  });

  it('invalid_json_line for non-JSON, non-objects and blank lines', () => {
    for (const text of ['{"custom_id":', '[1]', 'null', '"x"', '3', '', '   ']) {
      expect(errorsOf(text, 4), text).toEqual([{ code: 'invalid_json_line', message: 'This line is not parseable as valid JSON.', param: null, line: 4 }]);
    }
  });

  it('missing_required_parameter for each missing key, all reported', () => {
    for (const key of ['custom_id', 'method', 'url', 'body'] as const) {
      const { [key]: _, ...rest } = ok;
      expect(errorsOf(line(rest)), key).toEqual([
        { code: 'missing_required_parameter', message: `Missing required parameter: '${key}'.`, param: key, line: 7 },
      ]);
    }
    expect(errorsOf('{}', 2).map((e) => [e.code, e.param, e.line])).toEqual([
      ['missing_required_parameter', 'custom_id', 2],
      ['missing_required_parameter', 'method', 2],
      ['missing_required_parameter', 'url', 2],
      ['missing_required_parameter', 'body', 2],
    ]);
  });

  it('invalid_request custom_id: not a string, empty, too long', () => {
    for (const id of [12, '', 'x'.repeat(513), { a: 1 }]) {
      const errs = errorsOf(line({ ...ok, custom_id: id }));
      expect(errs).toHaveLength(1);
      expect(errs[0]).toMatchObject({ code: 'invalid_request', param: 'custom_id', line: 7 });
    }
    expect(validateRequestLine(line({ ...ok, custom_id: 'x'.repeat(512) }), 1, ctx()).ok).toBe(true);
  });

  it('duplicate_custom_id', () => {
    const c = ctx();
    expect(validateRequestLine(line(ok), 1, c).ok).toBe(true);
    expect(errorsOf(line(ok), 2, c)).toEqual([
      {
        code: 'duplicate_custom_id',
        message: "The custom_id 'r1' is used by more than one request (first on another line).",
        param: 'custom_id',
        line: 2,
      },
    ]);
    // A custom_id is remembered even when another field of its line is wrong.
    const c2 = ctx();
    errorsOf(line({ ...ok, url: '/v1/embeddings' }), 1, c2);
    expect(errorsOf(line(ok), 2, c2)[0]?.code).toBe('duplicate_custom_id');
  });

  it('invalid_request method', () => {
    expect(errorsOf(line({ ...ok, method: 'GET' }))).toEqual([
      { code: 'invalid_request', message: "Only POST is supported; got 'GET'.", param: 'method', line: 7 },
    ]);
    expect(errorsOf(line({ ...ok, method: 5 }))[0]).toMatchObject({ code: 'invalid_request', param: 'method' });
  });

  it('invalid_url', () => {
    expect(errorsOf(line({ ...ok, url: '/v1/embeddings' }))).toEqual([
      { code: 'invalid_url', message: 'The URL provided for this request does not match the batch endpoint.', param: 'url', line: 7 },
    ]);
  });

  it('invalid_request body, without a cascade to body.model', () => {
    for (const body of ['text', [1], 3]) {
      expect(errorsOf(line({ ...ok, body }))).toEqual([expect.objectContaining({ code: 'invalid_request', param: 'body', line: 7 })]);
    }
  });

  it('invalid_request body.model', () => {
    for (const body of [{}, { model: '' }, { model: 3 }]) {
      expect(errorsOf(line({ ...ok, body }))).toEqual([
        { code: 'invalid_request', message: 'Model parameter is required.', param: 'body.model', line: 7 },
      ]);
    }
  });

  it('streaming_unsupported', () => {
    expect(errorsOf(line({ ...ok, body: { model: 'm', stream: true } }))).toEqual([
      {
        code: 'streaming_unsupported',
        message: 'Chat Completions: Streaming is not supported in the Batch API.',
        param: 'body.stream',
        line: 7,
      },
    ]);
    expect(validateRequestLine(line({ ...ok, body: { model: 'm', stream: false } }), 1, ctx()).ok).toBe(true);
  });

  it('reports several problems of one line', () => {
    const errs = errorsOf(line({ custom_id: '', method: 'PUT', url: '/x', body: { stream: true } }), 9);
    expect(errs.map((e) => [e.code, e.param])).toEqual([
      ['invalid_request', 'custom_id'],
      ['invalid_request', 'method'],
      ['invalid_url', 'url'],
      ['invalid_request', 'body.model'],
      ['streaming_unsupported', 'body.stream'],
    ]);
    expect(errs.every((e) => e.line === 9)).toBe(true);
  });
});
