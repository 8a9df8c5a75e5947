import { describe, expect, it } from 'vitest';

import { prefixKeyOf } from '../../src/upstream/prefix-key.js';

const SYSTEM = 'You are a careful annotator. Label the sentiment of the text as positive, negative or neutral.';
const chat = (messages: object[], extra: object = {}): string => JSON.stringify({ model: 'm', ...extra, messages });

describe('prefixKeyOf', () => {
  it('chat: the leading system message is the key, whatever follows', () => {
    const a = prefixKeyOf(chat([{ role: 'system', content: SYSTEM }, { role: 'user', content: 'I loved it' }]));
    const b = prefixKeyOf(chat([{ role: 'system', content: SYSTEM }, { role: 'user', content: 'Awful.' }], { temperature: 0 }));
    const c = prefixKeyOf(chat([{ role: 'system', content: `${SYSTEM}!` }, { role: 'user', content: 'I loved it' }]));
    expect(a).toMatch(/^[0-9a-z]+$/);
    expect(b).toBe(a);
    expect(c).not.toBe(a);
  });

  it('chat: several leading system/developer messages all count; role may follow content', () => {
    const two = [
      { role: 'system', content: 'A' },
      { role: 'developer', content: 'B' },
      { role: 'user', content: 'x' },
    ];
    const k = prefixKeyOf(chat(two));
    expect(prefixKeyOf(chat([two[0]!, two[1]!, { role: 'user', content: 'other' }]))).toBe(k);
    expect(prefixKeyOf(chat([two[0]!, { role: 'user', content: 'x' }]))).not.toBe(k);
    expect(prefixKeyOf(JSON.stringify({ messages: [{ content: 'A', role: 'system' }, { content: 'B', role: 'developer' }, { content: 'y', role: 'user' }] }))).toBe(k);
    // A system message later in the conversation is not part of the prefix.
    expect(prefixKeyOf(chat([{ role: 'user', content: 'hi' }, { role: 'system', content: 'A' }]))).toBe(prefixKeyOf(chat([{ role: 'user', content: 'hi' }])));
  });

  it('chat without a system message: the first `chars` characters of the first message', () => {
    const instructions = 'Classify the following review. Answer with one word. '.repeat(20);
    const k1 = prefixKeyOf(chat([{ role: 'user', content: `${instructions}Review: great` }]));
    const k2 = prefixKeyOf(chat([{ role: 'user', content: `${instructions}Review: bad` }]));
    expect(k1).toBe(k2);
    expect(prefixKeyOf(chat([{ role: 'user', content: `${instructions}Review: bad` }]), { chars: 5000 })).not.toBe(k1);
    // Content parts (multimodal form) are hashed as their JSON.
    const parts = prefixKeyOf(chat([{ role: 'user', content: [{ type: 'text', text: 'hello' }] }]));
    expect(parts).not.toBeNull();
    expect(parts).not.toBe(prefixKeyOf(chat([{ role: 'user', content: 'hello' }])));
  });

  it('the same text as system and as user message gives different keys (different rendered prompts)', () => {
    expect(prefixKeyOf(chat([{ role: 'system', content: 'same' }, { role: 'user', content: 'q' }]))).not.toBe(prefixKeyOf(chat([{ role: 'user', content: 'same' }])));
  });

  it('system text beyond `maxChars` does not change the key', () => {
    const long = 'x'.repeat(10_000);
    const k = prefixKeyOf(chat([{ role: 'system', content: `${long}A` }]), { maxChars: 4096 });
    expect(prefixKeyOf(chat([{ role: 'system', content: `${long}B` }]), { maxChars: 4096 })).toBe(k);
    expect(prefixKeyOf(chat([{ role: 'system', content: `${long}B` }]), { maxChars: 20_000 })).not.toBe(prefixKeyOf(chat([{ role: 'system', content: `${long}A` }]), { maxChars: 20_000 }));
  });

  it('responses: instructions (before or after input) and leading system items; else the input', () => {
    const k = prefixKeyOf(JSON.stringify({ model: 'm', instructions: SYSTEM, input: 'text one' }));
    expect(prefixKeyOf(JSON.stringify({ input: 'text two', model: 'm', instructions: SYSTEM }))).toBe(k);
    expect(prefixKeyOf(JSON.stringify({ instructions: SYSTEM, input: [{ role: 'user', content: 'z' }] }), { url: '/v1/responses' })).toBe(k);
    const items = prefixKeyOf(JSON.stringify({ input: [{ type: 'message', role: 'system', content: SYSTEM }, { role: 'user', content: 'q1' }] }));
    expect(prefixKeyOf(JSON.stringify({ input: [{ type: 'message', role: 'system', content: SYSTEM }, { role: 'user', content: 'q2' }] }))).toBe(items);
    expect(prefixKeyOf(JSON.stringify({ input: 'just text' }))).toBe(prefixKeyOf(JSON.stringify({ model: 'x', input: 'just text' })));
  });

  it('completions: the first `chars` characters of the prompt (string, list or token ids)', () => {
    const head = 'Translate to French. '.repeat(30);
    expect(prefixKeyOf(JSON.stringify({ model: 'm', prompt: `${head}cat` }))).toBe(prefixKeyOf(JSON.stringify({ prompt: `${head}dog`, model: 'm' })));
    expect(prefixKeyOf(JSON.stringify({ prompt: [1, 2, 3] }), { url: '/v1/completions' })).not.toBeNull();
    expect(prefixKeyOf(JSON.stringify({ prompt: 'a' }))).not.toBe(prefixKeyOf(JSON.stringify({ prompt: 'b' })));
  });

  it('null when nothing usable', () => {
    for (const body of ['', 'not json', '[]', '{}', '{"model":"m"}', '{"messages":[]}', '{"messages":"x"}', '{"prompt":""}', '{"messages":[{"role":"user","content":""}]}', '{"messages":[{"role":"user","content":null}]}', '{"messages":[{"role":"system","content":"unterminated}]}']) {
      expect(prefixKeyOf(body), body).toBeNull();
    }
    // The endpoint, when given, decides which field counts.
    expect(prefixKeyOf(JSON.stringify({ input: 'embed me' }), { url: '/v1/embeddings' })).toBeNull();
    expect(prefixKeyOf(chat([{ role: 'system', content: 'A' }]), { url: '/v1/completions' })).toBeNull();
    expect(prefixKeyOf(chat([{ role: 'system', content: 'A' }]), { url: '/v1/chat/completions' })).toBe(prefixKeyOf(chat([{ role: 'system', content: 'A' }])));
  });

  it('reads raw JSON: escapes and nested values are skipped correctly', () => {
    const tricky = JSON.stringify({ metadata: { a: '}"]{', b: ['\\"', { c: '\\\\' }] }, messages: [{ role: 'system', content: 'say "hi" \\ \n ok' }, { role: 'user', content: 'q' }] });
    const k = prefixKeyOf(tricky);
    expect(k).not.toBeNull();
    expect(prefixKeyOf(JSON.stringify({ messages: [{ role: 'system', content: 'say "hi" \\ \n ok' }, { role: 'user', content: 'other' }] }))).toBe(k);
    // Whitespace between tokens does not matter; the text itself does.
    expect(prefixKeyOf('{ "messages" : [ { "role" : "system" , "content" : "A" } ] }')).toBe(prefixKeyOf('{"messages":[{"role":"system","content":"A"}]}'));
  });

  it('is deterministic (a fixed value, so replicas and releases agree)', () => {
    expect(prefixKeyOf(chat([{ role: 'system', content: 'You are helpful.' }, { role: 'user', content: 'Hi' }]))).toBe(prefixKeyOf('{"messages":[{"role":"system","content":"You are helpful."}]}'));
    expect(prefixKeyOf('{"messages":[{"role":"system","content":"You are helpful."}]}')).toMatchInlineSnapshot(`"1fe72w4gxm3"`);
  });

  it('is cheap: stops after the prefix, far faster than JSON.parse of a large body', () => {
    const huge = 'lorem ipsum dolor sit amet '.repeat(150_000); // ~4 MB user message
    const body = chat([{ role: 'system', content: SYSTEM }, { role: 'user', content: huge }]);
    /** Best of 5 runs of `n` calls, ms per call: the least disturbed by other work on the machine. */
    const time = (fn: () => unknown, n: number): number => {
      let best = Infinity;
      for (let run = 0; run < 5; run++) {
        const t0 = performance.now();
        for (let i = 0; i < n; i++) fn();
        best = Math.min(best, (performance.now() - t0) / n);
      }
      return best;
    };
    const ours = time(() => prefixKeyOf(body), 500);
    const parse = time(() => JSON.parse(body), 2);
    // Measured ~3 µs against ~3 ms: the key reads the first few hundred bytes only.
    expect(ours * 20).toBeLessThan(parse);
    const small = chat([{ role: 'system', content: SYSTEM }, { role: 'user', content: 'short' }]);
    expect(time(() => prefixKeyOf(small), 5_000)).toBeLessThan(0.05); // ms; ~2 µs measured
  });
});
