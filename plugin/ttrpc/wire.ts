// The protobuf wire format, for the static codecs generated from proto/*.proto at build time
// (proto/gen-codecs.js writes plugin/ttrpc/ttrpc.pb.ts and plugin/nri/nri.pb.ts). Replaces
// protobufjs's reflection at run time: no codec is built at start, and an encode is one pass into
// a reused scratch buffer and one copy out.
//
// What the codecs keep from protobufjs, so that the bytes and the decoded objects are the same:
// - a field is written when its value is neither null nor undefined (a default value that is
//   present is written, as protobufjs does); repeated and map fields when not empty
// - a decoded message is an instance of its type's class: fields on the wire are own properties,
//   absent ones read the proto3 default from the prototype (strings "", numbers 0, false,
//   message fields null, repeated fields a frozen [], maps a frozen {})
// - bytes decode as a view of the input when it is a Buffer (a copy otherwise)
// int64/uint64 decode as numbers (exact up to 2^53, as protobufjs's toNumber), never Long objects.

export const EMPTY_ARRAY: readonly never[] = Object.freeze([]);
export const EMPTY_OBJECT: Readonly<Record<string, never>> = Object.freeze({});

// ---- writing ----

// utf8Write: Buffer's own, without write()'s argument juggling (not in @types/node)
type Scratch = Buffer & { utf8Write(s: string, offset: number): number };
let buf = Buffer.allocUnsafe(8192) as Scratch;
let pos = 0;

function grow(n: number): void {
  const next = Buffer.allocUnsafe(Math.max(buf.length * 2, pos + n)) as Scratch;
  buf.copy(next, 0, 0, pos);
  buf = next;
}

/** Starts an encode into the scratch buffer. */
export function begin(): void {
  pos = 0;
}

/** Ends an encode: a Buffer of its own holding the bytes written since begin(). */
export function finish(): Buffer {
  const out = Buffer.allocUnsafe(pos);
  buf.copy(out, 0, 0, pos);
  if (buf.length > 1 << 20) buf = Buffer.allocUnsafe(8192) as Scratch; // a rare large message: do not keep its buffer
  pos = 0;
  return out;
}

export function tag(t: number): void {
  // tags here are field numbers < 16 or small: at most two bytes
  if (pos + 2 > buf.length) grow(2);
  if (t < 128) buf[pos++] = t;
  else {
    buf[pos++] = (t & 127) | 128;
    buf[pos++] = t >>> 7;
  }
}

export function uint32(v: number): void {
  if (pos + 5 > buf.length) grow(5);
  v >>>= 0;
  while (v > 127) {
    buf[pos++] = (v & 127) | 128;
    v >>>= 7;
  }
  buf[pos++] = v;
}

function varint64(lo: number, hi: number): void {
  if (pos + 10 > buf.length) grow(10);
  while (hi) {
    buf[pos++] = (lo & 127) | 128;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  while (lo > 127) {
    buf[pos++] = (lo & 127) | 128;
    lo >>>= 7;
  }
  buf[pos++] = lo;
}

/** int32 and enums: negative values take ten bytes (sign-extended), as in every protobuf. */
export function int32(v: number): void {
  if (v < 0) varint64(v >>> 0, 0xffffffff);
  else uint32(v);
}

interface LongLike {
  low: number;
  high: number;
}

/** int64 and uint64 from a number (or a Long-like {low, high}). */
export function int64(v: number | LongLike | bigint): void {
  if (typeof v === 'object') return varint64(v.low >>> 0, v.high >>> 0);
  if (typeof v === 'bigint') return varint64(Number(BigInt.asUintN(32, v)), Number(BigInt.asUintN(32, v >> 32n)));
  if (v >= 0 && v < 4294967296) return uint32(v);
  const neg = v < 0;
  if (neg) v = -v;
  let lo = v >>> 0;
  let hi = Math.floor(v / 4294967296) >>> 0;
  if (neg) {
    hi = ~hi >>> 0;
    lo = ~lo >>> 0;
    if (++lo > 4294967295) {
      lo = 0;
      if (++hi > 4294967295) hi = 0;
    }
  }
  varint64(lo, hi);
}

export function bool(v: boolean): void {
  if (pos + 1 > buf.length) grow(1);
  buf[pos++] = v ? 1 : 0;
}

export function string(s: string): void {
  const n = s.length;
  if (n < 43) {
    // at most 126 bytes of UTF-8: a one-byte length
    if (pos + 1 + n * 3 > buf.length) grow(1 + n * 3);
    let p = pos + 1;
    let ascii = true;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 128) {
        ascii = false;
        break;
      }
      buf[p++] = c;
    }
    if (!ascii) p = pos + 1 + buf.utf8Write(s, pos + 1);
    buf[pos] = p - pos - 1;
    pos = p;
    return;
  }
  const len = Buffer.byteLength(s, 'utf8');
  uint32(len);
  if (pos + len > buf.length) grow(len);
  pos += buf.utf8Write(s, pos);
}

export function bytes(b: Uint8Array | readonly number[]): void {
  const len = b.length;
  uint32(len);
  if (pos + len > buf.length) grow(len);
  if (b instanceof Uint8Array) buf.set(b, pos);
  else for (let i = 0; i < len; i++) buf[pos + i] = b[i];
  pos += len;
}

/** Starts a length-delimited submessage: returns the mark to give to end(). */
export function fork(): number {
  if (pos + 1 > buf.length) grow(1);
  return pos++; // one byte reserved for the length; end() makes room when it needs more
}

export function end(mark: number): void {
  const len = pos - mark - 1;
  if (len < 128) {
    buf[mark] = len;
    return;
  }
  let extra = 0;
  for (let v = len >>> 7; v > 0; v >>>= 7) extra++;
  if (pos + extra > buf.length) grow(extra);
  buf.copyWithin(mark + 1 + extra, mark + 1, pos);
  let v = len;
  let p = mark;
  while (v > 127) {
    buf[p++] = (v & 127) | 128;
    v >>>= 7;
  }
  buf[p] = v;
  pos += extra;
}

/** map<string, string>: one entry message per key, in insertion order. */
export function stringMap(field: number, m: Record<string, string>): void {
  for (const k of Object.keys(m)) {
    tag((field << 3) | 2);
    const mark = fork();
    tag(10);
    string(k);
    tag(18);
    string(m[k]);
    end(mark);
  }
}

// ---- reading ----

export class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    readonly isBuffer = Buffer.isBuffer(buf),
  ) {
    this.pos = 0;
  }
}

function truncated(): Error {
  return new RangeError('index out of range: message truncated');
}

export function readUint32(r: Reader): number {
  const b = r.buf;
  let p = r.pos;
  let v = 0;
  let shift = 0;
  for (;;) {
    if (p >= b.length) throw truncated();
    const c = b[p++];
    if (shift < 28) v |= (c & 127) << shift;
    else if (shift === 28) v |= (c & 15) << 28;
    if (c < 128) break;
    shift += 7;
    if (shift > 63) throw new Error('invalid varint encoding');
  }
  r.pos = p;
  return v >>> 0;
}

export const readInt32 = (r: Reader): number => readUint32(r) | 0;

function readVarint64(r: Reader, signed: boolean): number {
  const b = r.buf;
  let p = r.pos;
  let lo = 0;
  let hi = 0;
  let shift = 0;
  for (;;) {
    if (p >= b.length) throw truncated();
    const c = b[p++];
    if (shift < 28) lo |= (c & 127) << shift;
    else if (shift === 28) {
      lo |= (c & 15) << 28;
      hi |= (c & 127) >>> 4;
    } else if (shift < 64) hi |= (c & 127) << (shift - 32);
    if (c < 128) break;
    shift += 7;
    if (shift > 63) throw new Error('invalid varint encoding');
  }
  r.pos = p;
  lo >>>= 0;
  hi >>>= 0;
  if (signed && hi >>> 31) {
    let l = (~lo + 1) >>> 0;
    let h = ~hi >>> 0;
    if (!l) h = (h + 1) >>> 0;
    return -(l + h * 4294967296);
  }
  return lo + hi * 4294967296;
}

export const readInt64 = (r: Reader): number => readVarint64(r, true);
export const readUint64 = (r: Reader): number => readVarint64(r, false);
export const readBool = (r: Reader): boolean => readUint32(r) !== 0;

/** The end of a length-delimited field whose length comes next. */
export function readLength(r: Reader): number {
  const len = readUint32(r);
  const e = r.pos + len;
  if (e > r.buf.length) throw truncated();
  return e;
}

export function readString(r: Reader): string {
  const e = readLength(r);
  const s = r.pos;
  r.pos = e;
  return s === e ? '' : (Buffer.prototype.utf8Slice.call(r.buf, s, e) as string);
}

export function readBytes(r: Reader): Uint8Array {
  const e = readLength(r);
  const s = r.pos;
  r.pos = e;
  return r.isBuffer ? (r.buf as Buffer).subarray(s, e) : r.buf.slice(s, e);
}

/** Skips a field of unknown number. */
export function skip(r: Reader, wireType: number): void {
  switch (wireType) {
    case 0:
      readVarint64(r, false);
      return;
    case 1:
      r.pos += 8;
      break;
    case 2:
      r.pos = readLength(r);
      return;
    case 3:
      for (;;) {
        const t = readUint32(r);
        if ((t & 7) === 4) return;
        skip(r, t & 7);
      }
    case 5:
      r.pos += 4;
      break;
    default:
      throw new Error(`invalid wire type ${wireType} at offset ${r.pos}`);
  }
  if (r.pos > r.buf.length) throw truncated();
}

/** One map<string, string> entry into `m`. */
export function readStringMapEntry(r: Reader, m: Record<string, string>): void {
  const e = readLength(r);
  let k = '';
  let v = '';
  while (r.pos < e) {
    const t = readUint32(r);
    if (t === 10) k = readString(r);
    else if (t === 18) v = readString(r);
    else skip(r, t & 7);
  }
  m[k] = v;
}
