import helmet, { type HelmetOptions } from 'helmet';

import { CONTENT_SECURITY_POLICY_DIRECTIVES } from './static-web.js';

/**
 * The usual security headers on every answer (nosniff, frame-ancestors/DENY, no referrer, …) and
 * the page's strict Content-Security-Policy. No HSTS: BESH speaks plain HTTP; the TLS proxy in
 * front of it sets that.
 */
export const HELMET_OPTIONS = {
  contentSecurityPolicy: { useDefaults: false as const, directives: CONTENT_SECURITY_POLICY_DIRECTIVES },
  strictTransportSecurity: false,
  frameguard: { action: 'deny' as const },
  crossOriginResourcePolicy: { policy: 'same-origin' as const },
} satisfies HelmetOptions;

const apply = helmet(HELMET_OPTIONS);

/** Sets the same headers on a raw response: for answers sent before Fastify's hooks run (router errors). */
export function setSecurityHeaders(req: Parameters<typeof apply>[0], res: Parameters<typeof apply>[1]): void {
  apply(req, res, () => undefined);
}
