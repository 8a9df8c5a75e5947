import type { LookupAddress } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';

import { embeddedIpv4, inPrefix, type IpBytes, nonPublicReason, parseCidr, parseIp } from './ip-address.js';

/** Resolves a host name to its addresses (every one: the check must see them all). */
export type Resolver = (host: string) => Promise<LookupAddress[]>;

const systemResolver: Resolver = (host) => dnsLookup(host, { all: true, verbatim: true });

/** Longest webhook URL accepted. */
export const MAX_URL_LENGTH = 2048;

/** Why a destination was refused: `invalid_url` (not a usable http(s) URL, or a host that does not resolve) or `not_allowed` (a private address). */
export class DestinationError extends Error {
  constructor(
    readonly reason: 'invalid_url' | 'not_allowed',
    message: string,
  ) {
    super(message);
    this.name = 'DestinationError';
  }
}

/**
 * Where webhooks may go. Loopback, private (RFC 1918, ULA), link-local, CGNAT, unspecified,
 * multicast and reserved addresses are refused (an IPv6 address carrying an IPv4 one is judged by
 * it), unless the allow-list (BESH_WEBHOOK_ALLOW_HOSTS) names the host, the address or a CIDR
 * holding it. A host name must resolve only to acceptable addresses: one bad address refuses it.
 *
 * The check runs when an endpoint is created and again at every connection of a delivery, where
 * `lookup` (given to the HTTP client's connector) resolves, checks and hands back exactly the
 * addresses it checked, so the connection goes to a checked address: a DNS answer that changes
 * between the two (rebinding) cannot reach a private address.
 */
export class DestinationPolicy {
  readonly #hosts: ReadonlySet<string>;
  readonly #nets: ReadonlyArray<{ net: IpBytes; prefix: number }>;
  readonly #resolve: Resolver;

  constructor(allow: readonly string[], resolve: Resolver = systemResolver) {
    const hosts = new Set<string>();
    const nets: Array<{ net: IpBytes; prefix: number }> = [];
    for (const raw of allow) {
      const entry = raw.trim().toLowerCase();
      if (entry === '') continue;
      const cidr = parseCidr(entry);
      if (cidr) nets.push(cidr);
      else hosts.add(normalHost(entry));
    }
    this.#hosts = hosts;
    this.#nets = nets;
    this.#resolve = resolve;
  }

  /** Parses and checks a URL an endpoint is created with (the host is resolved). Throws a DestinationError. */
  async checkUrl(raw: string): Promise<URL> {
    const url = parseWebhookUrl(raw);
    await this.resolveChecked(hostOf(url));
    return url;
  }

  /**
   * The addresses to connect to for `host`, every one checked. Throws a DestinationError when the
   * host does not resolve or any of its addresses is not allowed.
   */
  async resolveChecked(host: string): Promise<LookupAddress[]> {
    const name = normalHost(host);
    const literal = parseIp(name);
    if (literal !== null) {
      this.#checkAddress(literal, name, name);
      return [{ address: name, family: literal.family }];
    }
    let addrs: LookupAddress[];
    try {
      addrs = await this.#resolve(name);
    } catch (err) {
      throw new DestinationError('invalid_url', `The host '${name}' could not be resolved (${(err as { code?: string }).code ?? 'lookup failed'}).`);
    }
    if (addrs.length === 0) throw new DestinationError('invalid_url', `The host '${name}' has no address.`);
    if (this.#hosts.has(name)) return addrs;
    for (const a of addrs) {
      const ip = parseIp(a.address);
      if (ip === null) throw new DestinationError('not_allowed', `The host '${name}' resolved to '${a.address}', which is not an IP address.`);
      this.#checkAddress(ip, a.address, name);
    }
    return addrs;
  }

  /**
   * A `lookup` for net/tls connections (undici's `connect.lookup`): resolves with `resolveChecked`
   * and answers only the checked addresses, in either of the forms Node asks for (`all` or not).
   */
  readonly lookup = (
    hostname: string,
    options: { all?: boolean; family?: number | string } | number | undefined,
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    this.resolveChecked(hostname).then(
      (addrs) => {
        const all = typeof options === 'object' && options !== null && options.all === true;
        if (all) callback(null, addrs);
        else callback(null, addrs[0]!.address, addrs[0]!.family);
      },
      (err: unknown) => {
        const e = err as NodeJS.ErrnoException;
        e.code ??= err instanceof DestinationError && err.reason === 'not_allowed' ? 'EDESTINATIONNOTALLOWED' : 'ENOTFOUND';
        callback(e, '');
      },
    );
  };

  #checkAddress(ip: IpBytes, shown: string, host: string): void {
    if (this.#hosts.has(host) || this.#allowedAddress(ip)) return;
    const why = nonPublicReason(ip);
    if (why === null) return;
    const via = shown === host ? '' : ` (it resolves to ${shown})`;
    throw new DestinationError('not_allowed', `Webhooks may not be sent to '${host}'${via}: a ${why} address. Allow it with BESH_WEBHOOK_ALLOW_HOSTS.`);
  }

  #allowedAddress(ip: IpBytes): boolean {
    const v4 = embeddedIpv4(ip);
    return this.#nets.some((n) => inPrefix(ip, n.net, n.prefix) || (v4 !== null && inPrefix(v4, n.net, n.prefix)));
  }
}

/** A URL a webhook may be sent to: http or https, a host, no credentials, at most MAX_URL_LENGTH. Throws a DestinationError. */
export function parseWebhookUrl(raw: string): URL {
  if (raw.length > MAX_URL_LENGTH) throw new DestinationError('invalid_url', `The URL is longer than ${MAX_URL_LENGTH} characters.`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new DestinationError('invalid_url', 'The URL is not a valid absolute URL.');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new DestinationError('invalid_url', `Only http and https URLs are supported, not '${url.protocol.slice(0, 20)}'.`);
  if (url.hostname === '') throw new DestinationError('invalid_url', 'The URL has no host.');
  if (url.username !== '' || url.password !== '') throw new DestinationError('invalid_url', 'The URL may not carry credentials (user:password@).');
  return url;
}

/** The host of a URL as the resolver and the allow-list take it: no brackets, lower case, no trailing dot. */
export const hostOf = (url: URL): string => normalHost(url.hostname);

function normalHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}
