import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

// Ids are minted per request at thousands per second: draw random bytes from a pool refilled
// in large blocks instead of one crypto call per id.
const pool = Buffer.alloc(16 * 1024);
let offset = pool.length;

/** A random base62 string; 24 chars carry ~142 bits (rejection sampling keeps it unbiased). */
export function randomId(length = 24): string {
  let out = '';
  while (out.length < length) {
    if (offset >= pool.length) {
      randomFillSync(pool);
      offset = 0;
    }
    const b = pool[offset++]!;
    if (b < 248) out += ALPHABET[b % 62];
  }
  return out;
}

export const newFileId = (): string => `file-${randomId()}`;
export const newBatchId = (): string => `batch_${randomId()}`;
export const newBatchRequestId = (): string => `batch_req_${randomId()}`;
export const newRequestId = (): string => `req_${randomId()}`;
export const newUploadId = (): string => `upload_${randomId()}`;
export const newUploadPartId = (): string => `part_${randomId()}`;

/** Ids we issue are short and plain; anything else cannot name one of our objects. */
const ID_PATTERN = /^(file-|batch_|upload_|part_)[0-9A-Za-z]{1,64}$/;
export const isWellFormedId = (id: string): boolean => ID_PATTERN.test(id);

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

export const newApiKeyId = (): string => `key_${randomId()}`;
/** An API key's secret: ~238 random bits, so a plain SHA-256 of it is a safe thing to store. */
export const newApiKeySecret = (): string => `besh-sk-${randomId(40)}`;
