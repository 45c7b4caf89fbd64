// An in-memory pair of ttrpc Transports: what one end writes, the other receives (asynchronously,
// in order, like a socket). Each end records what it wrote, so tests can inspect exact bytes.
import type { Transport } from '../../plugin/ttrpc';

export interface TestTransport extends Transport {
  /** every message this end wrote, in order */
  readonly written: Buffer[];
  /** delivers raw bytes to this end as if the peer had written them (any slicing) */
  inject(bytes: Buffer): void;
}

class End implements TestTransport {
  readonly written: Buffer[] = [];
  peer!: End;
  closed = false;
  private readonly dataListeners: Array<(b: Buffer) => void> = [];
  private readonly closeListeners: Array<(err?: Error) => void> = [];
  private readonly inbox: Buffer[] = [];
  private scheduled = false;

  write(message: Buffer): void {
    if (this.closed) return;
    const copy = Buffer.from(message);
    this.written.push(copy);
    this.peer.inject(copy);
  }
  inject(bytes: Buffer): void {
    if (this.closed) return;
    this.inbox.push(bytes);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      while (this.inbox.length && !this.closed) {
        const b = this.inbox.shift()!;
        for (const l of this.dataListeners) l(b);
      }
    });
  }
  onData(listener: (bytes: Buffer) => void): void {
    this.dataListeners.push(listener);
  }
  onClose(listener: (err?: Error) => void): void {
    this.closeListeners.push(listener);
  }
  close(err?: Error): void {
    this.closeLocal(err);
    this.peer.closeLocal();
  }
  closeLocal(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.closeListeners) l(err);
  }
}

/** Two connected in-memory transports. */
export function transportPair(): [TestTransport, TestTransport] {
  const a = new End();
  const b = new End();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
