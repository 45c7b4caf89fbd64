// ttrpc client: unary calls over one transport, odd stream ids, concurrent calls matched by id.
import { DEFAULT_MAX_MESSAGE, MessageReader, MessageType, encodeMessage, type Message } from './channel';
import { decodeResponse, encodeRequest, type KeyValue } from './codec';
import { ClosedError, Code, MAX_TIMER_MS, OversizedMessageError, TtrpcError } from './status';
import type { Transport } from './transport';

export interface CallOptions {
  /** fails the call with DEADLINE_EXCEEDED after this long, and tells the server (timeout_nano) */
  timeoutMs?: number;
  metadata?: KeyValue[];
}

interface Pending {
  resolve: (payload: Uint8Array) => void;
  reject: (err: Error) => void;
  timer?: NodeJS.Timeout;
}

export class Client {
  private nextStream = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly maxMessage: number;
  private closedWith?: Error;

  constructor(
    private readonly transport: Transport,
    opts: { maxMessage?: number } = {},
  ) {
    this.maxMessage = opts.maxMessage ?? DEFAULT_MAX_MESSAGE;
    const reader = new MessageReader(this.maxMessage);
    transport.onData((bytes) =>
      reader.push(
        bytes,
        (m) => this.onMessage(m),
        (o) => this.settle(o.streamId, new TtrpcError(Code.RESOURCE_EXHAUSTED, `ttrpc: response length ${o.length} exceeds maximum message size of ${this.maxMessage}`)),
      ),
    );
    transport.onClose((err) => this.failAll(new ClosedError(err ? `ttrpc: closed: ${err.message}` : 'ttrpc: closed')));
  }

  call(service: string, method: string, payload: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    if (this.closedWith || this.transport.closed) return Promise.reject(this.closedWith ?? new ClosedError());
    const data = encodeRequest({
      service,
      method,
      payload,
      timeoutNano: opts.timeoutMs ? Math.round(opts.timeoutMs * 1e6) : 0,
      metadata: opts.metadata ?? [],
    });
    if (data.length > this.maxMessage) return Promise.reject(new OversizedMessageError(data.length, this.maxMessage));
    const streamId = this.nextStream;
    this.nextStream += 2;
    return new Promise<Uint8Array>((resolve, reject) => {
      const p: Pending = { resolve, reject };
      if (opts.timeoutMs && opts.timeoutMs <= MAX_TIMER_MS) {
        p.timer = setTimeout(() => this.settle(streamId, new TtrpcError(Code.DEADLINE_EXCEEDED, `ttrpc: ${service}/${method}: context deadline exceeded`)), opts.timeoutMs);
      }
      this.pending.set(streamId, p);
      this.transport.write(encodeMessage(streamId, MessageType.Request, data));
    });
  }

  close(): void {
    this.transport.close();
    this.failAll(new ClosedError());
  }

  private onMessage(m: Message): void {
    if (m.type !== MessageType.Response) return; // NRI is unary: no data frames expected
    let res;
    try {
      res = decodeResponse(m.data);
    } catch (err) {
      this.settle(m.streamId, new TtrpcError(Code.INTERNAL, `ttrpc: malformed response: ${(err as Error).message}`));
      return;
    }
    const code = res.status?.code ?? Code.OK;
    if (code !== Code.OK) this.settle(m.streamId, new TtrpcError(code, res.status?.message ?? ''));
    else this.settle(m.streamId, undefined, res.payload);
  }

  /** Resolves or rejects one call; a response for an unknown (e.g. timed out) call is dropped. */
  private settle(streamId: number, err?: Error, payload?: Uint8Array): void {
    const p = this.pending.get(streamId);
    if (!p) return;
    this.pending.delete(streamId);
    if (p.timer) clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(payload ?? new Uint8Array(0));
  }

  private failAll(err: Error): void {
    this.closedWith ??= err;
    for (const [id] of this.pending) this.settle(id, err);
  }
}
