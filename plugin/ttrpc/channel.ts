// ttrpc framing: a 10-byte big-endian header (u32 length, u32 stream id, u8 type, u8 flags)
// then `length` bytes. The reader is fed raw bytes in any slicing and yields whole messages.

export const HEADER_LENGTH = 10;
/** The default maximum message size (data only, header not counted), as in containerd/ttrpc. */
export const DEFAULT_MAX_MESSAGE = 4 << 20;

export enum MessageType {
  Request = 0x1,
  Response = 0x2,
  Data = 0x3,
}

export interface Message {
  streamId: number;
  type: number;
  flags: number;
  data: Buffer;
}

/** A message whose header announced more than the maximum; its bytes were skipped unread. */
export interface Oversized {
  streamId: number;
  type: number;
  length: number;
}

export function encodeMessage(streamId: number, type: MessageType, data: Uint8Array, flags = 0): Buffer {
  const out = Buffer.allocUnsafe(HEADER_LENGTH + data.length);
  out.writeUInt32BE(data.length, 0);
  out.writeUInt32BE(streamId, 4);
  out[8] = type;
  out[9] = flags;
  out.set(data, HEADER_LENGTH);
  return out;
}

/** Reassembles messages from a byte stream; oversized ones are discarded, not buffered. */
export class MessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private discard = 0; // bytes of an oversized message still to skip
  private need = HEADER_LENGTH; // bytes needed before the next message completes

  constructor(private readonly maxMessage = DEFAULT_MAX_MESSAGE) {}

  /** Feeds bytes; calls onMessage / onOversized for each message completed by them. */
  push(bytes: Buffer, onMessage: (m: Message) => void, onOversized: (o: Oversized) => void): void {
    if (this.discard > 0) {
      const skip = Math.min(this.discard, bytes.length);
      this.discard -= skip;
      bytes = bytes.subarray(skip);
      if (bytes.length === 0) return;
    }
    this.chunks.push(bytes);
    this.buffered += bytes.length;
    if (this.buffered < this.need) return; // a large message still streaming in: do not re-concatenate
    this.need = HEADER_LENGTH;
    let buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    let off = 0;
    while (buf.length - off >= HEADER_LENGTH) {
      const length = buf.readUInt32BE(off);
      const streamId = buf.readUInt32BE(off + 4);
      const type = buf[off + 8];
      if (length > this.maxMessage) {
        const available = buf.length - off - HEADER_LENGTH;
        const skip = Math.min(available, length);
        this.discard = length - skip;
        off += HEADER_LENGTH + skip;
        onOversized({ streamId, type, length });
        if (this.discard > 0) break;
        continue;
      }
      if (buf.length - off - HEADER_LENGTH < length) {
        this.need = HEADER_LENGTH + length;
        break;
      }
      const start = off + HEADER_LENGTH;
      // copy out so the message does not pin a large shared buffer
      const data = Buffer.from(buf.subarray(start, start + length));
      const flags = buf[off + 9];
      off = start + length;
      onMessage({ streamId, type, flags, data });
    }
    if (off >= buf.length) {
      this.chunks = [];
      this.buffered = 0;
    } else if (off > 0 || this.chunks.length > 1) {
      buf = buf.subarray(off);
      this.chunks = [buf];
      this.buffered = buf.length;
    }
  }
}
