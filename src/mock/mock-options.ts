/**
 * Options of the mock inference server, their defaults, and their parsing from CLI-style flags.
 * Every field is validated in one place (`resolveMockOptions`), so `startMockServer` and the CLI
 * reject the same bad values with the same message naming the flag.
 */
export type SchedulingPolicy = 'fcfs' | 'priority';

export interface MockOptions {
  host: string;
  port: number;
  /** Fixed delay before answering an inference request, once it holds a capacity slot. */
  latencyMs: number;
  /** Extra delay per completion token generated. */
  perTokenMs: number;
  /** Requests processed at once; 0 = unlimited; the rest wait FIFO like GPU batch slots. */
  capacity: number;
  /** Model names served; empty = any name (and `GET /v1/models` answers 404, see docs/simulator.md). */
  models: string[];
  embeddingDims: number;
  fail500Rate: number;
  fail429Rate: number;
  /** Sent on an injected 429 as `Retry-After`. */
  retryAfterSeconds: number;
  /** Destroy the socket without answering. */
  dropRate: number;
  /** A given request (by key) gets at most this many injected faults, then is served normally. */
  maxFaultsPerRequest: number;
  /** A request whose raw body contains it gets HTTP 400 with an OpenAI error envelope. */
  failMarker: string;
  /** A request whose raw body contains it is never answered (the socket stays open). */
  hangMarker: string;
  seed: number;
  /**
   * Sequences running at once in the vLLM-shaped engine (vLLM's `--max-num-seqs`); 0 = off, the
   * latency/capacity model above applies and every option below keeps its default.
   */
  maxNumSeqs: number;
  /** Tokens one engine step may process (vLLM's `--max-num-batched-tokens`): decodes + prefill chunks. */
  maxNumBatchedTokens: number;
  /** Step time per prompt token computed (not served from the prefix cache). */
  prefillMsPerToken: number;
  /** Step time of a decode step with one sequence running. */
  decodeMsPerToken: number;
  /** Fraction of `decodeMsPerToken` each further running sequence adds to a decode step. */
  decodeGrowthPerSeq: number;
  /** Prefix cache capacity in tokens (LRU over 16-token blocks); 0 = no prefix caching. */
  prefixCacheTokens: number;
  /** KV cache capacity in tokens; admission waits when running sequences would not fit. */
  kvCacheTokens: number;
  /** `fcfs` refuses a request with a non-zero `priority` (as vLLM does); `priority` orders the queue by it. */
  schedulingPolicy: SchedulingPolicy;
}

/** The vLLM-shaped engine's defaults: roughly Llama-3-8B (BF16) on one H100, see docs/simulator.md. */
const engineDefaults = {
  maxNumSeqs: 0,
  maxNumBatchedTokens: 8192,
  prefillMsPerToken: 0.03,
  decodeMsPerToken: 6.5,
  decodeGrowthPerSeq: 0.03,
  prefixCacheTokens: 0,
  kvCacheTokens: 400_000,
  schedulingPolicy: 'fcfs',
} as const satisfies Partial<MockOptions>;

export const defaultMockOptions: MockOptions = Object.freeze({
  host: '127.0.0.1',
  port: 8000,
  latencyMs: 0,
  perTokenMs: 0,
  capacity: 0,
  models: [],
  embeddingDims: 16,
  fail500Rate: 0,
  fail429Rate: 0,
  retryAfterSeconds: 1,
  dropRate: 0,
  maxFaultsPerRequest: Infinity,
  failMarker: 'MOCK_FAIL_400',
  hangMarker: 'MOCK_HANG',
  seed: 0,
  ...engineDefaults,
});

type Check = (v: number) => boolean;
const nonNegative: Check = (v) => Number.isFinite(v) && v >= 0;
const nonNegativeInt: Check = (v) => Number.isInteger(v) && v >= 0;
const positiveInt: Check = (v) => Number.isInteger(v) && v >= 1;
const rate: Check = (v) => Number.isFinite(v) && v >= 0 && v <= 1;

function check(flag: string, value: number, ok: Check, what: string): number {
  if (typeof value !== 'number' || !ok(value)) throw new Error(`--${flag} must be ${what}`);
  return value;
}

function checkString(flag: string, value: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new Error(`--${flag} must be a non-empty string`);
  return value;
}

function checkModels(models: unknown): string[] {
  if (models === undefined || models === null) return [];
  if (!Array.isArray(models) || models.some((m) => typeof m !== 'string' || m.length === 0)) {
    throw new Error('--models must be a comma-separated list of model names');
  }
  return [...(models as string[])];
}

/** Defaults filled in and every field validated; throws an `Error` naming the offending flag. */
export function resolveMockOptions(partial: Partial<MockOptions> = {}): MockOptions {
  const o: MockOptions = { ...defaultMockOptions, ...stripUndefined(partial) };
  const resolved: MockOptions = {
    host: checkString('host', o.host),
    port: check('port', o.port, (v) => Number.isInteger(v) && v >= 0 && v <= 65535, 'an integer between 0 and 65535'),
    latencyMs: check('latency-ms', o.latencyMs, nonNegative, 'a number ≥ 0'),
    perTokenMs: check('per-token-ms', o.perTokenMs, nonNegative, 'a number ≥ 0'),
    capacity: check('capacity', o.capacity, nonNegativeInt, 'an integer ≥ 0 (0 = unlimited)'),
    models: checkModels(o.models),
    embeddingDims: check('embedding-dims', o.embeddingDims, (v) => Number.isInteger(v) && v >= 1 && v <= 65536, 'an integer between 1 and 65536'),
    fail500Rate: check('fail-500-rate', o.fail500Rate, rate, 'a number between 0 and 1'),
    fail429Rate: check('fail-429-rate', o.fail429Rate, rate, 'a number between 0 and 1'),
    retryAfterSeconds: check('retry-after', o.retryAfterSeconds, nonNegativeInt, 'an integer ≥ 0 (seconds)'),
    dropRate: check('drop-rate', o.dropRate, rate, 'a number between 0 and 1'),
    maxFaultsPerRequest: check(
      'max-faults-per-request',
      o.maxFaultsPerRequest,
      (v) => v === Infinity || nonNegativeInt(v),
      'an integer ≥ 0 or "Infinity"',
    ),
    failMarker: checkString('fail-marker', o.failMarker),
    hangMarker: checkString('hang-marker', o.hangMarker),
    seed: check('seed', o.seed, Number.isSafeInteger, 'an integer'),
    maxNumSeqs: check('max-num-seqs', o.maxNumSeqs, nonNegativeInt, 'an integer ≥ 0 (0 = the vLLM-shaped engine is off)'),
    maxNumBatchedTokens: check('max-num-batched-tokens', o.maxNumBatchedTokens, positiveInt, 'an integer ≥ 1'),
    prefillMsPerToken: check('prefill-ms-per-token', o.prefillMsPerToken, nonNegative, 'a number ≥ 0'),
    decodeMsPerToken: check('decode-ms-per-token', o.decodeMsPerToken, nonNegative, 'a number ≥ 0'),
    decodeGrowthPerSeq: check('decode-growth-per-seq', o.decodeGrowthPerSeq, nonNegative, 'a number ≥ 0'),
    prefixCacheTokens: check('prefix-cache-tokens', o.prefixCacheTokens, nonNegativeInt, 'an integer ≥ 0 (0 = off)'),
    kvCacheTokens: check('kv-cache-tokens', o.kvCacheTokens, positiveInt, 'an integer ≥ 1'),
    schedulingPolicy: checkPolicy(o.schedulingPolicy),
  };
  checkModeFlags(resolved);
  return resolved;
}

function checkPolicy(p: string): SchedulingPolicy {
  if (p !== 'fcfs' && p !== 'priority') throw new Error('--scheduling-policy must be "fcfs" or "priority"');
  return p;
}

const ENGINE_FLAGS: ReadonlyArray<[keyof typeof engineDefaults, string]> = [
  ['maxNumBatchedTokens', 'max-num-batched-tokens'],
  ['prefillMsPerToken', 'prefill-ms-per-token'],
  ['decodeMsPerToken', 'decode-ms-per-token'],
  ['decodeGrowthPerSeq', 'decode-growth-per-seq'],
  ['prefixCacheTokens', 'prefix-cache-tokens'],
  ['kvCacheTokens', 'kv-cache-tokens'],
  ['schedulingPolicy', 'scheduling-policy'],
];

/** The two timing models exclude each other: a flag of the one not in use is a mistake, not a no-op. */
function checkModeFlags(o: MockOptions): void {
  if (o.maxNumSeqs === 0) {
    for (const [field, flag] of ENGINE_FLAGS) {
      if (o[field] !== engineDefaults[field]) throw new Error(`--${flag} needs --max-num-seqs (the vLLM-shaped engine)`);
    }
    return;
  }
  for (const [field, flag] of [['capacity', 'capacity'], ['latencyMs', 'latency-ms'], ['perTokenMs', 'per-token-ms']] as const) {
    if (o[field] !== 0) throw new Error(`--${flag} does not apply with --max-num-seqs (the engine's timing replaces it)`);
  }
  if (o.maxNumBatchedTokens < o.maxNumSeqs) throw new Error('--max-num-batched-tokens must be ≥ --max-num-seqs (each running sequence decodes a token per step)');
}

function stripUndefined(p: Partial<MockOptions>): Partial<MockOptions> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) if (v !== undefined) out[k] = v;
  return out;
}

/** Flag name (without `--`) → option field holding a number. */
const NUMERIC_FLAGS = {
  port: 'port',
  'latency-ms': 'latencyMs',
  'per-token-ms': 'perTokenMs',
  capacity: 'capacity',
  'embedding-dims': 'embeddingDims',
  'fail-500-rate': 'fail500Rate',
  'fail-429-rate': 'fail429Rate',
  'retry-after': 'retryAfterSeconds',
  'drop-rate': 'dropRate',
  'max-faults-per-request': 'maxFaultsPerRequest',
  seed: 'seed',
  'max-num-seqs': 'maxNumSeqs',
  'max-num-batched-tokens': 'maxNumBatchedTokens',
  'prefill-ms-per-token': 'prefillMsPerToken',
  'decode-ms-per-token': 'decodeMsPerToken',
  'decode-growth-per-seq': 'decodeGrowthPerSeq',
  'prefix-cache-tokens': 'prefixCacheTokens',
  'kv-cache-tokens': 'kvCacheTokens',
} as const satisfies Record<string, keyof MockOptions>;

const INFINITE = new Set(['infinity', 'inf', 'unlimited']);

function toNumber(flag: string, raw: string): number {
  const s = raw.trim();
  if (flag === 'max-faults-per-request' && INFINITE.has(s.toLowerCase())) return Infinity;
  // Number('') is 0: an empty value is a mistake, not a zero.
  return s === '' ? NaN : Number(s);
}

/**
 * Options from a record keyed like the CLI flags (`latency-ms`, `models`, …). Missing or undefined
 * keys take their default; anything else is validated.
 */
export function parseMockOptions(raw: Record<string, string | undefined>): MockOptions {
  const partial: Partial<MockOptions> = {};
  for (const [flag, field] of Object.entries(NUMERIC_FLAGS)) {
    const value = raw[flag];
    if (value !== undefined) partial[field] = toNumber(flag, value);
  }
  if (raw.host !== undefined) partial.host = raw.host.trim();
  if (raw.models !== undefined) {
    partial.models = raw.models
      .split(',')
      .map((m) => m.trim())
      .filter((m) => m.length > 0);
    // `--models ''` names nothing: a mistake, not "any model" (which is the flag left out).
    if (partial.models.length === 0) throw new Error('--models must name at least one model (leave the flag out to serve any model)');
  }
  if (raw['fail-marker'] !== undefined) partial.failMarker = raw['fail-marker'];
  if (raw['hang-marker'] !== undefined) partial.hangMarker = raw['hang-marker'];
  if (raw['scheduling-policy'] !== undefined) partial.schedulingPolicy = raw['scheduling-policy'].trim() as SchedulingPolicy;
  return resolveMockOptions(partial);
}
