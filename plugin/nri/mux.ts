// The NRI multiplexer: several logical byte streams over one socket, as frames of
// [u32 connID BE][u32 length BE][payload]. Written to be read by the Go mux, whose reader hands
// ttrpc one whole frame per read into a 4096-byte buffer: so every outgoing ttrpc message goes out
// as its first 4096 bytes plus, if longer, one frame with the rest (what Go's bufio writer does).
// Incoming frames are only a byte stream per connection; nothing assumes one frame is one message.
import type { Socket } from 'node:net';
import type { Transport } from '../ttrpc';

export const PLUGIN_SERVICE_CONN = 1;
export const RUNTIME_SERVICE_CONN = 2;
const FRAME_HEADER = 8;
const GO_READ_BUFFER = 4096;
/** Largest frame accepted: old runtimes write up to 16 MiB, newer ones split at 4 MiB + 10. */
export const MAX_FRAME = 1 << 24;

export class MuxError extends Error {}

export class Mux {
  private readonly conns = new Map<number, MuxConn>();
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** bytes needed before the next frame completes: no re-concatenation while a large frame streams in */
  private need = FRAME_HEADER;
  private closed = false;
  private readonly closeListeners: Array<(err?: Error) => void> = [];

  constructor(
    private readonly socket: Socket,
    private readonly maxFrame = MAX_FRAME,
  ) {
    socket.on('data', (b: Buffer) => this.onBytes(b));
    socket.on('error', (err) => this.close(err));
    socket.on('close', () => this.close());
    socket.on('end', () => this.close());
  }

  /** Opens logical connection `id`; there is no handshake, both sides just use the id. */
  open(id: number): Transport {
    let c = this.conns.get(id);
    if (!c) {
      c = new MuxConn(id, this);
      this.conns.set(id, c);
      if (this.closed) c.closeLocal();
    }
    return c;
  }

  onClose(listener: (err?: Error) => void): void {
    this.closeListeners.push(listener);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    for (const c of this.conns.values()) c.closeLocal(err);
    for (const l of this.closeListeners) l(err);
  }

  /** Writes one ttrpc message for conn `id` in the Go-compatible split. */
  writeMessage(id: number, message: Buffer): void {
    if (this.closed) return;
    if (message.length <= GO_READ_BUFFER) {
      this.socket.write(frame(id, message));
      return;
    }
    const first = frame(id, message.subarray(0, GO_READ_BUFFER));
    const rest = message.subarray(GO_READ_BUFFER);
    const restHeader = Buffer.allocUnsafe(FRAME_HEADER);
    restHeader.writeUInt32BE(id, 0);
    restHeader.writeUInt32BE(rest.length, 4);
    // one write: the two frames stay contiguous on the socket
    this.socket.write(Buffer.concat([first, restHeader, rest]));
  }

  private onBytes(bytes: Buffer): void {
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    if (this.pendingBytes < this.need) return;
    let buf = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
    let off = 0;
    while (buf.length - off >= FRAME_HEADER) {
      const id = buf.readUInt32BE(off);
      const length = buf.readUInt32BE(off + 4);
      if (length > this.maxFrame) {
        this.close(new MuxError(`nri mux: frame of ${length} bytes on conn ${id} exceeds the ${this.maxFrame}-byte limit`));
        return;
      }
      if (buf.length - off - FRAME_HEADER < length) {
        this.need = FRAME_HEADER + length;
        break;
      }
      const payload = buf.subarray(off + FRAME_HEADER, off + FRAME_HEADER + length);
      off += FRAME_HEADER + length;
      const c = this.conns.get(id);
      if (c && length > 0) c.deliver(payload); // frames for unopened ids are dropped, as the Go mux does
      if (this.closed) return;
    }
    const rest = buf.subarray(off);
    this.pending = rest.length ? [rest] : [];
    this.pendingBytes = rest.length;
    if (rest.length < FRAME_HEADER || rest.length >= this.need) this.need = FRAME_HEADER;
  }
}

function frame(id: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + payload.length);
  out.writeUInt32BE(id, 0);
  out.writeUInt32BE(payload.length, 4);
  payload.copy(out, FRAME_HEADER);
  return out;
}

/** One logical connection of a Mux, as a ttrpc Transport. */
class MuxConn implements Transport {
  private dataListeners: Array<(b: Buffer) => void> = [];
  private closeListeners: Array<(err?: Error) => void> = [];
  closed = false;

  constructor(
    private readonly id: number,
    private readonly mux: Mux,
  ) {}

  write(message: Buffer): void {
    if (!this.closed) this.mux.writeMessage(this.id, message);
  }
  onData(listener: (b: Buffer) => void): void {
    this.dataListeners.push(listener);
  }
  onClose(listener: (err?: Error) => void): void {
    this.closeListeners.push(listener);
  }
  /** Closing any logical connection closes the trunk: NRI has no per-connection close. */
  close(err?: Error): void {
    this.mux.close(err);
  }
  deliver(payload: Buffer): void {
    // payload is a view into the socket's chunk; ttrpc's reader copies what it keeps
    for (const l of this.dataListeners) l(payload);
  }
  closeLocal(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.closeListeners) l(err);
  }
}
