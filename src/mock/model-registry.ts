/** The name `GET /v1/models` lists first (and `/metrics` labels with) when any model is served. */
export const DEFAULT_MODEL = 'mock-model';
/** Names remembered in any-model mode; a client sending endless names cannot grow the list past it. */
const MAX_SEEN = 1000;

const modelList = (ids: readonly string[], created: number): string =>
  JSON.stringify({ object: 'list', data: ids.map((id) => ({ id, object: 'model', created, owned_by: 'besh-mock' })) });

/**
 * The models the mock serves: the `--models` list, or (without one) any name. In any-model mode
 * `GET /v1/models` has no list to give: BESH validates a batch's model against its upstreams'
 * lists, and a list of the names seen so far would refuse a batch naming a new one. So it answers
 * 404, like a server without that route, and BESH does not check models on this upstream; the
 * names asked for so far are listed at `GET /mock/models`.
 */
export class ModelRegistry {
  private readonly fixed: ReadonlySet<string> | null;
  private readonly seen = new Set<string>([DEFAULT_MODEL]);
  private readonly created = Math.floor(Date.now() / 1000);
  private readonly fixedList: string | null;

  constructor(models: readonly string[]) {
    this.fixed = models.length > 0 ? new Set(models) : null;
    this.fixedList = models.length > 0 ? modelList(models, this.created) : null;
  }

  get anyModel(): boolean {
    return this.fixed === null;
  }

  /** The `model_name` label of `/metrics`: one engine, one served name, as vLLM's. */
  get metricsName(): string {
    return this.fixed === null ? DEFAULT_MODEL : this.fixed.values().next().value!;
  }

  /** Whether `model` is served; in any-model mode it is, and is remembered. */
  serves(model: string): boolean {
    if (this.fixed !== null) return this.fixed.has(model);
    if (this.seen.size < MAX_SEEN) this.seen.add(model);
    return true;
  }

  /** The body of `GET /v1/models`, or null to answer 404 (any-model mode). */
  v1List(): string | null {
    return this.fixedList;
  }

  /** The body of `GET /mock/models`: the served list, or `mock-model` plus every name asked for. */
  mockList(): string {
    return this.fixedList ?? modelList([...this.seen], this.created);
  }
}
