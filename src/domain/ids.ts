import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** A random base62 string; 24 chars carry ~142 bits. */
export function randomId(length = 24): string {
  const bytes = randomBytes(length);
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[bytes[i]! % 62];
  return out;
}

export const newFileId = (): string => `file-${randomId()}`;
export const newBatchId = (): string => `batch_${randomId()}`;
export const newBatchRequestId = (): string => `batch_req_${randomId()}`;
export const newRequestId = (): string => `req_${randomId()}`;

/** Ids we issue are short and plain; anything else cannot name one of our objects. */
const ID_PATTERN = /^(file-|batch_)[0-9A-Za-z]{1,64}$/;
export const isWellFormedId = (id: string): boolean => ID_PATTERN.test(id);

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);
