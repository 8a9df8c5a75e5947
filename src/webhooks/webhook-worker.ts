import { isTerminal, nowSeconds } from '../domain/index.js';
import type { MetaStore } from '../store/meta-store.js';
import type { ClaimedDelivery } from '../store/webhook-store.js';
import { WebhookSender } from './deliver.js';
import type { DestinationPolicy } from './destination.js';
import { nextStep } from './retry-schedule.js';
import { webhookHeaders } from './signing.js';

export interface WebhookLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface WebhookWorkerOptions {
  store: Pick<MetaStore, 'webhooks' | 'subscribe'>;
  /** This replica's id: the owner of its delivery leases. */
  owner: string;
  log: WebhookLogger;
  policy: DestinationPolicy;
  /** Each retry's time after the first attempt (ms, increasing). */
  retryScheduleMs: readonly number[];
  /** Deadline of one attempt. */
  timeoutMs: number;
  /** The outbox is looked at least this often. */
  pollMs: number;
  /** Attempts in flight at once on this replica (default 16). */
  concurrency?: number;
}

/** Delivered and failed deliveries are kept this long (seconds), then forgotten. */
const KEEP_FINISHED_S = 30 * 86_400;
const PRUNE_EVERY_MS = 3_600_000;
/** A timer never shorter than this, so a clock skew between store and replica cannot spin the loop. */
const MIN_SLEEP_MS = 5;

/**
 * Sends the webhook outbox, on every replica. States: `idle → running → draining → stopped`.
 *
 *   running:  claim due deliveries (under a lease, up to the free slots) → each attempt signs the
 *             stored body, POSTs it (WebhookSender) and records the outcome fenced by its lease;
 *             then sleep until the next delivery is due, the poll interval passes, a batch of
 *             this cluster reaches a terminal status (the store's change feed), or a slot frees.
 *   draining: claim nothing more; attempts in flight get the grace period, then are aborted and
 *             their leases given back uncounted (another replica, or the next start, sends them).
 *
 * The lease outlives an attempt (twice its timeout, plus 5 s), so while a replica is alive no other
 * one takes its delivery; one that dies mid-attempt leaves a lease that expires, and the delivery
 * is attempted again: at least once, never lost.
 */
export class WebhookWorker {
  readonly #o: WebhookWorkerOptions;
  readonly #sender: WebhookSender;
  readonly #leaseMs: number;
  readonly #concurrency: number;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #state: 'idle' | 'running' | 'draining' | 'stopped' = 'idle';
  #loop: Promise<void> | null = null;
  #wakeUp: (() => void) | null = null;
  #woken = false;
  #unsubscribe: (() => void) | null = null;
  #lastPrune = 0;

  constructor(o: WebhookWorkerOptions) {
    this.#o = o;
    this.#sender = new WebhookSender(o.policy, o.timeoutMs);
    this.#leaseMs = 2 * o.timeoutMs + 5_000;
    this.#concurrency = Math.max(1, o.concurrency ?? 16);
  }

  start(): void {
    if (this.#state !== 'idle') return;
    this.#state = 'running';
    this.#unsubscribe = this.#o.store.subscribe((e) => {
      if (e.type === 'batch' && isTerminal(e.status)) this.wake();
    });
    this.#loop = this.#run();
  }

  /** Looks at the outbox now (a new delivery was queued). */
  wake(): void {
    this.#woken = true;
    this.#wakeUp?.();
  }

  /** Claims nothing more; lets attempts in flight finish within `graceMs`, then aborts (and gives back) the rest. */
  async stop(graceMs: number): Promise<void> {
    if (this.#state === 'idle') this.#state = 'stopped';
    if (this.#state === 'stopped') return;
    this.#state = 'draining';
    this.#unsubscribe?.();
    this.wake();
    await this.#loop;
    if (this.#inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((r) => (timer = setTimeout(r, graceMs)));
      await Promise.race([Promise.all([...this.#inFlight]), grace]);
      clearTimeout(timer);
      this.#abort.abort(new Error('webhook worker stopped'));
      await Promise.all([...this.#inFlight]);
    }
    await this.#sender.close();
    this.#state = 'stopped';
  }

  async #run(): Promise<void> {
    const { store, owner, log, pollMs } = this.#o;
    while (this.#state === 'running') {
      this.#woken = false;
      let sleepMs = pollMs;
      try {
        const free = this.#concurrency - this.#inFlight.size;
        if (free > 0) {
          const claimed = await store.webhooks.claimDue(owner, this.#leaseMs, free);
          for (const c of claimed) this.#track(this.#attempt(c, performance.now()));
          // Every slot taken: more may be due; an attempt ending wakes the loop.
          if (claimed.length < free) {
            const due = await store.webhooks.nextDueInMs();
            if (due !== null) sleepMs = Math.min(pollMs, Math.max(MIN_SLEEP_MS, due));
          }
        }
        await this.#prune();
      } catch (err) {
        log.warn({ err }, 'webhook outbox unavailable');
      }
      if (this.#state === 'running' && !this.#woken) await this.#sleep(sleepMs);
    }
  }

  #track(p: Promise<void>): void {
    this.#inFlight.add(p);
    void p.finally(() => {
      this.#inFlight.delete(p);
      this.wake();
    });
  }

  async #attempt(c: ClaimedDelivery, claimedAt: number): Promise<void> {
    const { store, log, retryScheduleMs } = this.#o;
    const { delivery: d, endpoint: e, fence } = c;
    try {
      // A claim that sat (a paused process) until its lease is nearly gone is not used: another
      // replica may hold it by the time the POST would end.
      if (performance.now() - claimedAt > this.#leaseMs - this.#o.timeoutMs - 1_000) return;
      const ts = nowSeconds();
      const secrets = [e.secret];
      if (e.previousSecret !== null && (e.previousSecretExpiresAt ?? 0) > ts) secrets.push(e.previousSecret);
      const result = await this.#sender.post(e.url, d.payload, webhookHeaders(d.id, ts, d.payload, secrets), this.#abort.signal);
      if (result.aborted) {
        await store.webhooks.releaseDelivery(fence);
        return;
      }
      const attempt = d.attempts + 1;
      const next = nextStep(attempt, result.statusCode, retryScheduleMs);
      const held = await store.webhooks.recordAttempt(fence, { statusCode: result.statusCode, error: result.error, next });
      const line = {
        deliveryId: d.id,
        endpointId: e.id,
        project: d.project,
        event: d.type,
        host: hostLabel(e.url),
        attempt,
        statusCode: result.statusCode,
        error: result.error,
        outcome: held ? next.kind : 'lease_lost',
        ...(next.kind === 'retry' ? { retryInMs: next.retryInMs } : {}),
      };
      if (next.kind === 'delivered') log.info(line, 'webhook delivered');
      else if (next.kind === 'failed') log.warn(line, 'webhook delivery failed for good');
      else log.info(line, 'webhook attempt failed; will retry');
    } catch (err) {
      // The store could not record it: the lease expires and the delivery is attempted again.
      log.warn({ err, deliveryId: d.id, endpointId: e.id }, 'webhook attempt could not be recorded');
    }
  }

  async #prune(): Promise<void> {
    if (Date.now() - this.#lastPrune < PRUNE_EVERY_MS) return;
    this.#lastPrune = Date.now();
    const n = await this.#o.store.webhooks.pruneDeliveries(nowSeconds() - KEEP_FINISHED_S);
    if (n > 0) this.#o.log.debug({ deliveries: n }, 'old webhook deliveries forgotten');
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wakeUp = () => {
        this.#wakeUp = null;
        done();
      };
    });
  }
}

/** The origin only: a URL's path and query may hold a token (Slack-style hooks), never logged. */
function hostLabel(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '?';
  }
}
