/** Decimal units throughout (1 MB = 10^6 bytes), so "< 300 MB" is the stricter reading. */
export const MB = 1_000_000;

export const int = (n: number): string => Math.round(n).toLocaleString('en-US');
export const fixed = (n: number, digits: number): string =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
export const megabytes = (bytes: number): string => (bytes < 10 * MB ? `${fixed(bytes / MB, 1)} MB` : `${int(bytes / MB)} MB`);
export const seconds = (ms: number): string => `${fixed(ms / 1000, 2)} s`;
export const percent = (ratio: number): string => `${fixed(ratio * 100, 1)} %`;
