import { describe, expect, it } from 'vitest';

import { withPriority } from '../../src/upstream/priority-field.js';

describe('withPriority', () => {
  it('splices a top-level "priority" after the opening brace, keeping the rest byte for byte', () => {
    const body = '{"model":"m","messages":[{"role":"user","content":"{\\"priority\\":9}"}]}';
    const out = withPriority(body, 3);
    expect(out).toBe(`{"priority":3,${body.slice(1)}`);
    expect(JSON.parse(out)).toEqual({ ...(JSON.parse(body) as object), priority: 3 });
  });

  it('handles leading whitespace, an empty object and negative values', () => {
    expect(withPriority('  \n{ }', -2)).toBe('  \n{"priority":-2 }');
    expect(JSON.parse(withPriority('{}', 0))).toEqual({ priority: 0 });
    expect(JSON.parse(withPriority(' {\n "a": 1\n}', 5))).toEqual({ priority: 5, a: 1 });
  });

  it('leaves anything else unchanged: non-integers, non-objects, a bare brace', () => {
    for (const p of [1.5, Number.NaN, Infinity, 2 ** 60]) expect(withPriority('{"a":1}', p)).toBe('{"a":1}');
    for (const b of ['[1]', '"x"', '', '{']) expect(withPriority(b, 1)).toBe(b);
  });

  it("a body's own priority comes later in the text and wins (JSON keeps the last duplicate)", () => {
    expect((JSON.parse(withPriority('{"priority":7,"model":"m"}', 1)) as { priority: number }).priority).toBe(7);
  });

  it('does not copy a large body to splice it (≪ the time a JSON.parse takes)', () => {
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(4_000_000) }] });
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) withPriority(body, i);
    const splice = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    JSON.parse(body);
    const parse = performance.now() - t1;
    expect(splice * 20).toBeLessThan(parse);
  });
});
