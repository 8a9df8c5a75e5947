import type { APIError } from 'openai';
import { expect } from 'vitest';

/** Expects `p` to reject with an SDK error of this class and status, and returns the error. */
export async function rejects<E extends APIError>(p: Promise<unknown>, cls: new (...args: any[]) => E, status: number): Promise<E> {
  const err = await p.then(
    (v) => {
      throw new Error(`expected ${cls.name} ${status}, got success: ${JSON.stringify(v)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(cls);
  expect((err as APIError).status).toBe(status);
  return err as E;
}
