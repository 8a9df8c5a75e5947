import { describe, expect, it } from 'vitest';

import { ConfigError, parseConfig } from '../../src/config.js';

describe('operations configuration', () => {
  it('has the documented defaults', () => {
    const c = parseConfig({}, '/x');
    expect(c).toMatchObject({ inputFileTtlSeconds: 30 * 86_400, outputFileTtlSeconds: 30 * 86_400, sweepIntervalMs: 60_000, minFreeBytes: 1024 ** 3, metricsToken: null });
  });

  it('reads durations, and 0/never as keep forever', () => {
    const ttl = (v: string): number | null => parseConfig({ BESH_INPUT_FILE_TTL: v }, '/x').inputFileTtlSeconds;
    expect([ttl('2s'), ttl('90m'), ttl('12h'), ttl('30d'), ttl('1w'), ttl('3600'), ttl('0'), ttl('never'), ttl('NEVER')]).toEqual([
      2, 5400, 43_200, 2_592_000, 604_800, 3600, null, null, null,
    ]);
    expect(parseConfig({ BESH_OUTPUT_FILE_TTL: 'never' }, '/x').outputFileTtlSeconds).toBeNull();
    for (const bad of ['3x', '-1d', '1.5h', 'soon']) {
      expect(() => parseConfig({ BESH_OUTPUT_FILE_TTL: bad }, '/x')).toThrow(ConfigError);
    }
    expect(() => parseConfig({ BESH_MIN_FREE_BYTES: '-1' }, '/x')).toThrow(/BESH_MIN_FREE_BYTES/);
    expect(parseConfig({ BESH_METRICS_TOKEN: 'abc' }, '/x').metricsToken).toBe('abc');
  });
});
