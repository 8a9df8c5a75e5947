import { createHmac, randomBytes } from 'node:crypto';

/**
 * Standard Webhooks signatures (what OpenAI sends, and what `openai`'s `webhooks.unwrap()` and the
 * `standardwebhooks` package verify): `webhook-signature: v1,<base64 HMAC-SHA256 of
 * "<webhook-id>.<webhook-timestamp>.<body>">`, keyed with the base64-decoded part of the
 * `whsec_…` secret. Several signatures (a rotation's old and new secrets) are space-separated.
 */

const SECRET_PREFIX = 'whsec_';

/** A new signing secret: `whsec_` and 32 random bytes in base64. */
export const newWebhookSecret = (): string => `${SECRET_PREFIX}${randomBytes(32).toString('base64')}`;

/** `v1,<signature>` of one message with one secret. */
export function sign(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`, 'utf8').digest('base64')}`;
}

/** The three headers of one attempt: signed with every secret given (the current one first). */
export function webhookHeaders(id: string, timestamp: number, body: string, secrets: readonly string[]): Record<string, string> {
  if (secrets.length === 0) throw new Error('A webhook is signed with at least one secret');
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': secrets.map((s) => sign(s, id, timestamp, body)).join(' '),
  };
}
