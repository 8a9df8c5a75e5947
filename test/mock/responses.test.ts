import OpenAI from 'openai';
import type { Response as SdkResponse, ResponseOutputMessage, ResponseOutputText, ResponseUsage } from 'openai/resources/responses/responses';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';

/** The keys a type requires (not optional). */
type RequiredKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? never : K }[keyof T];

/**
 * Every required key of the openai SDK's types, listed so that the compiler checks the list: a key
 * the SDK adds or drops makes this file fail to typecheck until the mock follows.
 */
const RESPONSE_KEYS: Record<Exclude<RequiredKeys<SdkResponse>, 'output_text'>, true> = {
  id: true,
  created_at: true,
  error: true,
  incomplete_details: true,
  instructions: true,
  metadata: true,
  model: true,
  object: true,
  output: true,
  parallel_tool_calls: true,
  temperature: true,
  tool_choice: true,
  tools: true,
  top_p: true,
};
const USAGE_KEYS: Record<RequiredKeys<ResponseUsage>, true> = { input_tokens: true, input_tokens_details: true, output_tokens: true, output_tokens_details: true, total_tokens: true };
const INPUT_DETAILS_KEYS: Record<RequiredKeys<ResponseUsage.InputTokensDetails>, true> = { cached_tokens: true, cache_write_tokens: true };
const OUTPUT_DETAILS_KEYS: Record<RequiredKeys<ResponseUsage.OutputTokensDetails>, true> = { reasoning_tokens: true };
const MESSAGE_KEYS: Record<RequiredKeys<ResponseOutputMessage>, true> = { id: true, content: true, role: true, status: true, type: true };
const TEXT_KEYS: Record<RequiredKeys<ResponseOutputText>, true> = { annotations: true, text: true, type: true };

/** Optional in the SDK's type but sent by OpenAI, and asked for by SDK users' code. */
const ALSO_SENT = ['status', 'max_output_tokens', 'previous_response_id', 'reasoning', 'store', 'text', 'truncation', 'usage', 'user'] as const;

const keysOf = (o: Record<string, true>): string[] => Object.keys(o);

describe('/v1/responses: the whole Response object', () => {
  let mock: MockServer;
  let client: OpenAI;
  beforeAll(async () => {
    mock = await startMockServer({ host: '127.0.0.1', port: 0 });
    client = new OpenAI({ baseURL: `${mock.url}/v1`, apiKey: 'x', maxRetries: 0 });
  });
  afterAll(() => mock.close());

  it('carries every key the SDK types require, with values of their types', async () => {
    const r = await fetch(`${mock.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock-model', input: 'Tell me about batching' }),
    });
    const body = (await r.json()) as Record<string, any>;
    for (const key of [...keysOf(RESPONSE_KEYS), ...ALSO_SENT]) expect(body, key).toHaveProperty(key);
    for (const key of keysOf(USAGE_KEYS)) expect(body.usage, key).toHaveProperty(key);
    for (const key of keysOf(INPUT_DETAILS_KEYS)) expect(typeof body.usage.input_tokens_details[key], key).toBe('number');
    for (const key of keysOf(OUTPUT_DETAILS_KEYS)) expect(typeof body.usage.output_tokens_details[key], key).toBe('number');
    expect(body.output).toHaveLength(1);
    for (const key of keysOf(MESSAGE_KEYS)) expect(body.output[0], key).toHaveProperty(key);
    for (const key of keysOf(TEXT_KEYS)) expect(body.output[0].content[0], key).toHaveProperty(key);

    expect(body).toMatchObject({
      object: 'response',
      error: null,
      instructions: null,
      max_output_tokens: null,
      metadata: {},
      model: 'mock-model',
      parallel_tool_calls: true,
      previous_response_id: null,
      reasoning: { effort: null, summary: null },
      store: true,
      temperature: 1,
      text: { format: { type: 'text' } },
      tool_choice: 'auto',
      tools: [],
      top_p: 1,
      truncation: 'disabled',
      user: null,
    });
    expect(body.id).toMatch(/^resp_/);
    expect(Number.isInteger(body.created_at)).toBe(true);
    expect(body.output[0]).toMatchObject({ type: 'message', role: 'assistant', status: body.status });
    expect(body.output[0].content[0]).toMatchObject({ type: 'output_text', annotations: [] });
    const u = body.usage;
    expect(u.total_tokens).toBe(u.input_tokens + u.output_tokens);
    expect(u.output_tokens).toBe(body.output[0].content[0].text.split(' ').length);
    expect(u.input_tokens).toBe(Math.ceil('Tell me about batching'.length / 4) + 4);
    expect(u.input_tokens_details).toEqual({ cached_tokens: 0, cache_write_tokens: 0 });
    expect(u.output_tokens_details).toEqual({ reasoning_tokens: 0 });
  });

  it('parses with the openai SDK (output_text included) and echoes the request’s settings', async () => {
    const r = await client.responses.create({
      model: 'mock-model',
      instructions: 'Be brief.',
      input: [{ role: 'user', content: 'Hello there' }],
      temperature: 0.2,
      top_p: 0.9,
      metadata: { job: 'nightly' },
      user: 'user-42',
      store: false,
      max_output_tokens: 3,
      ignore_eos: true,
    } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
    expect(r.output_text).toBe((r.output[0] as ResponseOutputMessage).content.map((c) => (c as ResponseOutputText).text).join(''));
    expect(r.output_text.split(' ')).toHaveLength(3);
    expect(r).toMatchObject({
      instructions: 'Be brief.',
      temperature: 0.2,
      top_p: 0.9,
      metadata: { job: 'nightly' },
      user: 'user-42',
      store: false,
      max_output_tokens: 3,
      status: 'incomplete',
      incomplete_details: { reason: 'max_output_tokens' },
    });
    expect(r.usage!.input_tokens).toBe(Math.ceil(('Be brief.'.length + 'Hello there'.length) / 4) + 4);
  });
});
