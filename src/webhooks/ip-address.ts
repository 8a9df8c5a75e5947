import { isIPv4, isIPv6 } from 'node:net';

/** An IP address as bytes (4 or 16), parsed strictly: never a host name. */
export interface IpBytes {
  family: 4 | 6;
  bytes: Uint8Array;
}

/** Parses an IPv4 or IPv6 literal (brackets and a zone id are tolerated); null when it is not one. */
export function parseIp(text: string): IpBytes | null {
  let s = text.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (isIPv4(s)) return { family: 4, bytes: Uint8Array.from(s.split('.').map(Number)) };
  if (!isIPv6(s)) return null;
  return { family: 6, bytes: parseIpv6(s) };
}

function parseIpv6(s: string): Uint8Array {
  const out = new Uint8Array(16);
  let head = s;
  let tail = '';
  const gap = s.indexOf('::');
  if (gap >= 0) {
    head = s.slice(0, gap);
    tail = s.slice(gap + 2);
  }
  const words = (part: string): number[] => {
    if (part === '') return [];
    const groups = part.split(':');
    const last = groups[groups.length - 1]!;
    const out: number[] = [];
    for (const g of groups.slice(0, -1)) out.push(parseInt(g, 16));
    if (last.includes('.')) {
      const [a, b, c, d] = last.split('.').map(Number) as [number, number, number, number];
      out.push((a << 8) | b, (c << 8) | d);
    } else {
      out.push(parseInt(last, 16));
    }
    return out;
  };
  const h = words(head);
  const t = words(tail);
  const all = [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
  all.forEach((w, i) => {
    out[2 * i] = (w >> 8) & 0xff;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/** Does `ip` lie in `net`/`prefix` (same family)? */
export function inPrefix(ip: IpBytes, net: IpBytes, prefix: number): boolean {
  if (ip.family !== net.family) return false;
  let bits = prefix;
  for (let i = 0; i < ip.bytes.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((ip.bytes[i]! & mask) !== (net.bytes[i]! & mask)) return false;
  }
  return true;
}

/** A CIDR (`10.0.0.0/8`, `fd00::/8`) or a single address (its whole length); null when malformed. */
export function parseCidr(text: string): { net: IpBytes; prefix: number } | null {
  const slash = text.indexOf('/');
  const net = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (net === null) return null;
  const max = net.family === 4 ? 32 : 128;
  if (slash < 0) return { net, prefix: max };
  const p = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(p) || Number(p) > max) return null;
  return { net, prefix: Number(p) };
}

/**
 * The IPv4 address an IPv6 address carries, where it forwards to one: IPv4-mapped (::ffff:0:0/96),
 * IPv4-compatible (::/96), NAT64 (64:ff9b::/96) and 6to4 (2002::/16). Null otherwise.
 */
export function embeddedIpv4(ip: IpBytes): IpBytes | null {
  if (ip.family !== 6) return null;
  const b = ip.bytes;
  const v4 = (from: number): IpBytes => ({ family: 4, bytes: b.slice(from, from + 4) });
  const zero = (from: number, to: number): boolean => b.slice(from, to).every((x) => x === 0);
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return v4(12);
  if (zero(0, 12) && !zero(12, 16) && !(zero(12, 15) && b[15] === 1)) return v4(12);
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return v4(12);
  if (b[0] === 0x20 && b[1] === 0x02) return v4(2);
  return null;
}

/** The ranges a webhook may not reach unless allowed, and why. */
const BLOCKED: ReadonlyArray<{ cidr: string; why: string }> = [
  { cidr: '0.0.0.0/8', why: 'unspecified' },
  { cidr: '10.0.0.0/8', why: 'private (RFC 1918)' },
  { cidr: '100.64.0.0/10', why: 'carrier-grade NAT' },
  { cidr: '127.0.0.0/8', why: 'loopback' },
  { cidr: '169.254.0.0/16', why: 'link-local' },
  { cidr: '172.16.0.0/12', why: 'private (RFC 1918)' },
  { cidr: '192.0.0.0/24', why: 'IETF protocol assignments' },
  { cidr: '192.168.0.0/16', why: 'private (RFC 1918)' },
  { cidr: '198.18.0.0/15', why: 'benchmarking' },
  { cidr: '224.0.0.0/4', why: 'multicast' },
  { cidr: '240.0.0.0/4', why: 'reserved' },
  { cidr: '::/128', why: 'unspecified' },
  { cidr: '::1/128', why: 'loopback' },
  { cidr: 'fc00::/7', why: 'unique local (ULA)' },
  { cidr: 'fe80::/10', why: 'link-local' },
  { cidr: 'fec0::/10', why: 'site-local' },
  { cidr: 'ff00::/8', why: 'multicast' },
];
const BLOCKED_NETS = BLOCKED.map((b) => ({ ...parseCidr(b.cidr)!, why: b.why }));

/** Why `ip` is not a public address (loopback, private, link-local, CGNAT, unspecified, …), or null when it is one. */
export function nonPublicReason(ip: IpBytes): string | null {
  for (const b of BLOCKED_NETS) if (inPrefix(ip, b.net, b.prefix)) return b.why;
  const v4 = embeddedIpv4(ip);
  return v4 === null ? null : nonPublicReason(v4);
}
