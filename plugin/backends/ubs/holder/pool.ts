// What the UBS backend asks of the UB memory pool, by share name. Two implementations: SdkPool
// (here) calls the SDK in this process and keeps its mappings by name; RemotePool (./client.ts)
// asks the holder process, which runs an SdkPool, so mappings outlive the agent.
import { KeyedLock } from '../../../locks/keyed-lock';
import { UbsmCode, ubsmCodeMeaning, ubsmCodeName, type SdkMapping, type ShmemInfo, type UbsSdk } from '../../../../native/ubs-sdk';

export interface UbsPool {
  /** undefined when calls can be made; otherwise why not (the SDK link is not up yet) */
  unavailable(): string | undefined;
  /** resolves once ready, or never (the caller bounds its wait) */
  whenReady(): Promise<void>;
  allocate(region: string, name: string, sizeBytes: number, mode: number, flags: number): Promise<number>;
  deallocate(name: string): Promise<number>;
  /** maps the share in the pool's process; 0 also when it already maps it */
  map(name: string, lengthBytes: number, prot: number): Promise<number>;
  /** 0 also when it does not map it */
  unmap(name: string): Promise<number>;
  lookup(name: string): Promise<{ code: number; info?: ShmemInfo }>;
  listLookup(prefix: string): Promise<{ code: number; shares: Array<{ name: string; sizeBytes: number }> }>;
  /** SDK names mapped right now */
  held(): Promise<string[]>;
  /** lets go of the connection (RemotePool) or the SDK link and its mappings (SdkPool) */
  close(): Promise<void>;
}

type LinkState = { ready: true } | { ready: false; reason: string };

/** The pool through the SDK in this process: initialize in the background, mappings by name. */
export class SdkPool implements UbsPool {
  private state: LinkState = { ready: false, reason: 'ubsmem_initialize has not answered yet' };
  private readonly mappings = new Map<string, SdkMapping>();
  /** calls per share name, one at a time: an unmap asked while its map runs waits for that map */
  private readonly perName = new KeyedLock();
  private readonly ready: Promise<void>;
  private stopped = false;

  constructor(
    private readonly sdk: UbsSdk,
    private readonly log: { info?(msg: string, d?: object): void; warn?(msg: string, d?: object): void } = {},
  ) {
    this.ready = this.connect();
  }

  private async connect(): Promise<void> {
    for (let attempt = 1, delay = 1000; !this.stopped; attempt++, delay = Math.min(delay * 2, 30_000)) {
      const code = await this.sdk.initialize();
      if (code === 0) {
        this.state = { ready: true };
        this.log.info?.('ubs: connected to the UB memory daemon', { library: this.sdk.libraryPath, attempts: attempt });
        return;
      }
      const reason = `ubsmem_initialize returned ${code} ${ubsmCodeName(code)}: ${ubsmCodeMeaning(code)}`;
      this.state = { ready: false, reason };
      this.log.warn?.(`ubs: cannot connect to the UB memory daemon; retrying in ${delay / 1000} s`, { reason, attempt });
      await new Promise((r) => setTimeout(r, delay).unref());
    }
  }

  linkState(): LinkState {
    return this.state;
  }

  unavailable(): string | undefined {
    return this.state.ready ? undefined : `the UB memory SDK is not connected to its daemon (${this.state.reason})`;
  }

  whenReady(): Promise<void> {
    return this.ready;
  }

  allocate(region: string, name: string, sizeBytes: number, mode: number, flags: number): Promise<number> {
    return this.perName.run(name, () => this.sdk.allocate(region, name, sizeBytes, mode, flags));
  }

  deallocate(name: string): Promise<number> {
    return this.perName.run(name, () => this.sdk.deallocate(name));
  }

  map(name: string, lengthBytes: number, prot: number): Promise<number> {
    return this.perName.run(name, async () => {
      if (this.mappings.has(name)) return 0;
      const r = await this.sdk.map(name, lengthBytes, prot);
      if (r.code === 0 && r.mapping) this.mappings.set(name, r.mapping);
      return r.code;
    });
  }

  unmap(name: string): Promise<number> {
    return this.perName.run(name, async () => {
      const m = this.mappings.get(name);
      if (!m) return 0;
      const code = await this.sdk.unmap(m);
      if (code === 0 || code === UbsmCode.NOT_FOUND) this.mappings.delete(name);
      return code;
    });
  }

  lookup(name: string): Promise<{ code: number; info?: ShmemInfo }> {
    return this.sdk.lookup(name);
  }

  async listLookup(prefix: string): Promise<{ code: number; shares: Array<{ name: string; sizeBytes: number }> }> {
    const r = await this.sdk.listLookup(prefix);
    return { code: r.code, shares: r.shares };
  }

  async held(): Promise<string[]> {
    return [...this.mappings.keys()];
  }

  heldWithLength(): Array<{ name: string; lengthBytes: number }> {
    return [...this.mappings.values()].map((m) => ({ name: m.name, lengthBytes: m.lengthBytes }));
  }

  /** Drops the daemon link: the daemon treats it as this process's exit (its mappings end). */
  async close(): Promise<void> {
    this.stopped = true;
    this.mappings.clear();
    if (this.state.ready) await this.sdk.finalize();
    this.state = { ready: false, reason: 'stopping' };
  }
}
