import type { MetaStore } from '../../../src/store/meta-store.js';

export interface ContractOptions {
  /**
   * Another store on the database of the last `makeStore()` (as a second process or replica would
   * open it); cases that need one are skipped without it.
   */
  openPeer?: () => Promise<MetaStore>;
}

/** What every part of the contract reads: the store of the running test, and its peers. */
export class ContractContext {
  #store: MetaStore | null = null;
  readonly #peers: MetaStore[] = [];
  readonly #openPeer: (() => Promise<MetaStore>) | undefined;

  constructor(opts: ContractOptions) {
    this.#openPeer = opts.openPeer;
  }

  get store(): MetaStore {
    if (this.#store === null) throw new Error('No store: the contract opens one before each test');
    return this.#store;
  }

  get hasPeers(): boolean {
    return this.#openPeer !== undefined;
  }

  /** A second store on the same database, closed after the test. */
  async peer(): Promise<MetaStore> {
    if (this.#openPeer === undefined) throw new Error('This dialect opens no peer store');
    const p = await this.#openPeer();
    this.#peers.push(p);
    return p;
  }

  begin(store: MetaStore): void {
    this.#store = store;
  }

  async end(): Promise<void> {
    const all = [...this.#peers.splice(0), ...(this.#store === null ? [] : [this.#store])];
    this.#store = null;
    for (const s of all) await s.close();
  }
}
