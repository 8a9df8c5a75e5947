/**
 * How urgent a batch is, for FairSlots' earliest-deadline-first between one project's batches:
 * the power of two of the seconds it has left (lower runs first). Deadlines in the same band
 * count as equal, so the project's batches share its slots round-robin: two 24 h batches
 * submitted minutes apart are equally due, and a 10-line batch is not queued behind a
 * 50,000-line one that merely came first. A batch due in 30 s (band 4) goes before one due in a
 * day (band 16); one due in 20 h and one in 23 h share band 16.
 */
export function deadlineBand(expiresAtSeconds: number, nowSeconds: number): number {
  const left = expiresAtSeconds - nowSeconds;
  return left <= 1 ? 0 : Math.floor(Math.log2(left));
}
