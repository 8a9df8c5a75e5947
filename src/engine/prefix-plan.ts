/**
 * The dispatch order that groups a batch's lines by the prompt prefix they share (a system prompt,
 * a few-shot template), so an inference server's prefix cache computes each prefix once and reuses
 * it for the whole group, instead of evicting it between scattered uses.
 *
 * Bounded memory, never the bodies: one fixed-size entry per request line (its length in the
 * reordered copy and a group number, then its offset there: 16 bytes), and one map entry per
 * distinct prefix, capped
 * (past the cap the input shares too little for grouping to pay). Groups keep the order in which
 * their prefix first appears, and lines keep their order within a group, so the plan is the same
 * on every replica that builds it.
 */
export class PrefixPlan {
  #n = 0;
  #lengths: Uint32Array;
  #groups: Uint32Array;
  readonly #groupOf = new Map<string, number>();
  #nextGroup = 0;
  #shared = 0;
  #runs = 0;
  #lastGroup = -1;
  #overflow = false;

  constructor(
    expected: number,
    /** More distinct prefixes than this: not worth grouping (and not worth the memory). */
    readonly maxDistinct = 200_000,
    /**
     * After this many lines, fewer than 1 in 20 sharing a prefix with an earlier one: give up
     * early. Shuffled batches show their sharing from the start; an input with none (a million
     * distinct prompts) then costs neither the map of its keys nor hashing the rest.
     */
    readonly probeLines = 20_000,
  ) {
    const cap = Math.max(16, expected);
    this.#lengths = new Uint32Array(cap);
    this.#groups = new Uint32Array(cap);
  }

  /** False once the plan gave up: the caller need not compute more keys. */
  get tracking(): boolean {
    return !this.#overflow;
  }

  /** One request line, in input order: its bytes in the copy (with its '\n') and its prefix key (null: it shares nothing). */
  add(byteLength: number, key: string | null): void {
    if (this.#overflow) return;
    if (this.#n === this.#lengths.length) this.#grow();
    let group: number;
    const known = key === null ? undefined : this.#groupOf.get(key);
    if (known !== undefined) {
      group = known;
      this.#shared++;
    } else {
      group = this.#nextGroup++;
      if (key !== null) {
        this.#groupOf.set(key, group);
        if (this.#groupOf.size > this.maxDistinct) this.#giveUp();
      }
    }
    if (group !== this.#lastGroup) this.#runs++;
    this.#lastGroup = group;
    const i = this.#n++;
    this.#lengths[i] = byteLength;
    this.#groups[i] = group;
    if (this.#n === this.probeLines && this.#shared < this.#n / 20) this.#giveUp();
  }

  get lines(): number {
    return this.#n;
  }

  /**
   * Whether grouping changes enough to be worth a copy of the input: at least a fifth of the lines
   * share a prefix with an earlier one, and the lines sharing one are not already together.
   */
  worthIt(): boolean {
    if (this.#overflow || this.#n === 0) return false;
    return this.#shared >= this.#n / 5 && this.#runs > this.#nextGroup * 1.5;
  }

  /**
   * Where each line (in input order) goes in the copy: a counting sort by group, stable within each
   * group. Also the rank of each line in the copy (for finding its shard) and the copy's size.
   */
  order(): { destinations: Float64Array; ranks: Uint32Array; bytes: number } {
    const n = this.#n;
    const groupBytes = new Float64Array(this.#nextGroup);
    for (let i = 0; i < n; i++) groupBytes[this.#groups[i]!]! += this.#lengths[i]!;
    const next = new Float64Array(this.#nextGroup);
    let total = 0;
    for (let g = 0; g < this.#nextGroup; g++) {
      next[g] = total;
      total += groupBytes[g]!;
    }
    const groupLines = new Uint32Array(this.#nextGroup);
    for (let i = 0; i < n; i++) groupLines[this.#groups[i]!]!++;
    const nextRank = new Uint32Array(this.#nextGroup);
    for (let g = 1; g < this.#nextGroup; g++) nextRank[g] = nextRank[g - 1]! + groupLines[g - 1]!;
    const destinations = new Float64Array(n);
    const ranks = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const g = this.#groups[i]!;
      destinations[i] = next[g]!;
      next[g]! += this.#lengths[i]!;
      ranks[i] = nextRank[g]!++;
    }
    return { destinations, ranks, bytes: total };
  }

  #grow(): void {
    const cap = this.#lengths.length * 2;
    const grow = <T extends Float64Array | Uint32Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.#lengths = grow(this.#lengths, (c) => new Uint32Array(c));
    this.#groups = grow(this.#groups, (c) => new Uint32Array(c));
  }

  #giveUp(): void {
    this.#overflow = true;
    this.#groupOf.clear();
    this.#lengths = new Uint32Array(0);
    this.#groups = new Uint32Array(0);
  }
}
