// The wire protocol between the agent and the UB holder (./ubs-holder.ts): one JSON object per
// line over a unix stream socket, a request {id, op, ...} answered by {id, ...} in any order.
// Versioned by `hello`: the agent says which versions it speaks, the holder answers with the one
// it chose (or refuses), so an agent of a later release can keep talking to an older holder that
// still holds the node's shares (an upgrade never needs the holder to go).
import type { ShmemInfo } from '../../../../native/ubs-sdk';
import { messageOf } from '../../../model/errors';

/** Protocol versions this build speaks; the holder picks the highest both know. */
export const HOLDER_PROTOCOLS: readonly number[] = [1];
/** Longest line either side accepts: a list of 2000 shares is ~150 KiB. */
export const MAX_LINE_BYTES = 1024 * 1024;
/** The socket's file name in the agent's state dir. */
export const HOLDER_SOCKET = 'ubs-holder.sock';

/** What the holder says of itself. */
export interface HolderHello {
  protocol: number;
  /** random per holder process: a new one means every mapping of the old one is gone */
  instance: string;
  pid: number;
  version: string;
  startedAt: number;
  /** whether its SDK link to the daemon is up, and if not why */
  sdk: { ready: true } | { ready: false; reason: string };
  /** SDK names the holder maps right now, with the length each was mapped with */
  held: Array<{ name: string; lengthBytes: number }>;
}

export type HolderRequest =
  | { op: 'hello'; protocols: number[] }
  | { op: 'allocate'; region: string; name: string; sizeBytes: number; mode: number; flags: number }
  | { op: 'deallocate'; name: string }
  | { op: 'map'; name: string; lengthBytes: number; prot: number }
  | { op: 'unmap'; name: string }
  | { op: 'lookup'; name: string }
  | { op: 'listLookup'; prefix: string }
  | { op: 'shutdown' };

export type HolderReply =
  | { hello: HolderHello }
  | { code: number }
  | { code: number; info?: ShmemInfo }
  | { code: number; shares: Array<{ name: string; sizeBytes: number }> }
  | { error: string };

const OPS = new Set(['hello', 'allocate', 'deallocate', 'map', 'unmap', 'lookup', 'listLookup', 'shutdown']);

const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The request in a line, or why it is not one (the holder answers that and goes on). */
export function parseRequest(line: string): { id: number; req: HolderRequest } | { id: number | undefined; problem: string } {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    return { id: undefined, problem: `not JSON: ${messageOf(err)}` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { id: undefined, problem: 'not an object' };
  const o = v as Record<string, unknown>;
  const id = isNum(o.id) ? o.id : undefined;
  if (id === undefined) return { id, problem: 'id must be a non-negative integer' };
  if (typeof o.op !== 'string' || !OPS.has(o.op)) return { id, problem: `unknown op ${JSON.stringify(o.op)}` };
  const bad = (field: string) => ({ id, problem: `${o.op}: ${field} is missing or malformed` });
  switch (o.op) {
    case 'hello':
      return Array.isArray(o.protocols) && o.protocols.every(isNum) ? { id, req: { op: 'hello', protocols: o.protocols as number[] } } : bad('protocols');
    case 'allocate':
      for (const f of ['region', 'name']) if (!isStr(o[f])) return bad(f);
      for (const f of ['sizeBytes', 'mode', 'flags']) if (!isNum(o[f])) return bad(f);
      return { id, req: { op: 'allocate', region: o.region as string, name: o.name as string, sizeBytes: o.sizeBytes as number, mode: o.mode as number, flags: o.flags as number } };
    case 'map':
      if (!isStr(o.name)) return bad('name');
      if (!isNum(o.lengthBytes)) return bad('lengthBytes');
      if (!isNum(o.prot)) return bad('prot');
      return { id, req: { op: 'map', name: o.name, lengthBytes: o.lengthBytes, prot: o.prot } };
    case 'deallocate':
    case 'unmap':
    case 'lookup':
      return isStr(o.name) ? { id, req: { op: o.op, name: o.name } } : bad('name');
    case 'listLookup':
      return isStr(o.prefix) ? { id, req: { op: 'listLookup', prefix: o.prefix } } : bad('prefix');
    default:
      return { id, req: { op: 'shutdown' } };
  }
}

/** Splits a byte stream into lines, refusing any longer than MAX_LINE_BYTES. */
export class LineReader {
  private buf = '';
  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onTooLong: () => void,
  ) {}

  push(chunk: string): void {
    this.buf += chunk;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (line) this.onLine(line);
    }
    if (this.buf.length > MAX_LINE_BYTES) {
      this.buf = '';
      this.onTooLong();
    }
  }
}
