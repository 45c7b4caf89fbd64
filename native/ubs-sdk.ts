// koffi binding to the UB memory SDK (libubsm_sdk.so), the subset the UBS backend uses. ABI facts:
// docs/ubs-sdk.md A.1-A.7; the project's C view of the same ABI is native/ubs/include/ubs_mem.h.
//
// Why it looks like this:
// - Every SDK call is one synchronous IPC round trip to ubsmd (60 s default timeout, UBSE behind it up to
//   600 s; initialize alone retries a dead socket for ~31 s). So every call runs through koffi's `.async`,
//   off the event loop. koffi 2.16 runs async calls as N-API async work, i.e. on libuv's thread pool
//   (UV_THREADPOOL_SIZE, default 4), the same pool as fs/dns/zlib work.
// - Calls are serialised through one queue per loaded library: the SDK says nothing about thread safety
//   (A.7), and a queue caps the SDK at ONE pool thread, so a hung call never starves fs work. The cost: a
//   hung call delays the calls queued behind it; callers needing a deadline must race their own timer
//   (the native call still finishes in the background and its result is then dropped by the caller).
// - No JS logger callback is registered: the SDK would call it from its own HCOM threads (A.3).
// - Structs are anonymous koffi types (no global type names to collide), created on first use so importing
//   this module costs nothing.
import { readFileSync } from 'node:fs';
import { loadKoffi, type Koffi } from './koffi';

type CType = ReturnType<Koffi['opaque']>;
type KoffiFn = ReturnType<ReturnType<Koffi['load']>['func']>;

export const UBSM_OK = 0;

export const UbsmCode = {
  PARAM_INVALID: 6010,
  NOPERM: 6011,
  MEMORY: 6012,
  UNIMPL: 6013,
  CHECK_RESOURCE_ERROR: 6014,
  MEMLIB: 6015,
  NO_NEEDED: 6016,
  BUSY: 6017,
  NOT_FOUND: 6020,
  ALREADY_EXIST: 6021,
  MALLOC_FAIL: 6022,
  RECORD: 6023,
  IN_USING: 6024,
  NET: 6040,
  UBSE: 6050,
  OBMM: 6051,
  LOCK_NOT_SUPPORTED: 6060,
  LOCK_ALREADY_LOCKED: 6061,
  DLOCK: 6062,
  BUFF: 6099,
} as const;

/** mmap prot bits as the SDK takes them (map's prot must be one of NONE, READ, WRITE, READ|WRITE). */
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
const MAP_SHARED = 0x01;

/** Share flags (ubsmem_shmem_allocate); MALLOC_WITH_NUMA is rejected for shares. */
export const UbsmFlag = {
  CACHE: 0x0,
  WITH_LOCK: 0x1,
  NONCACHE: 0x2,
  WR_DELAY_COMP: 0x4,
  ONLY_IMPORT_NONCACHE: 0x8,
  MEM_ANONYMOUS: 0x10,
  MMAP_HUGETLB_PMD: 0x20,
} as const;

const MAX_SHM_NAME_LENGTH = 48;
const MAX_MEMID_NUM = 2048;
/** ubsmd lists at most this many shares from UBSE (UBS_MEM_MAX_DESC_LIST). */
const LIST_MAX = 2000;

const MEANINGS: Record<number, string> = {
  0: 'success',
  6010: 'invalid argument (bad name, size, flags, length, offset or prot; or the share is already mapped by this process; or the list buffer is too small)',
  6011: 'permission denied (the share mode does not grant this uid/gid the requested access, or the caller is not the creator)',
  6012: 'out of memory in the SDK',
  6013: 'not implemented',
  6014: 'resource check failed',
  6015: 'the SDK library could not start (ubsmd socket unreachable after retries, or libobmm missing)',
  6016: 'nothing to do (e.g. creating or destroying the implicit "default" region)',
  6017: "the share's name is busy (being created, or a delayed removal is pending)",
  6020: 'not found (no such share or region, or the share is not attached on this node)',
  6021: 'already exists',
  6022: 'allocation failed (no memory left in the pool or over quota)',
  6023: 'the daemon could not record the operation',
  6024: 'the share is in use (still mapped on this or another node)',
  6040: 'IPC to ubsmd failed (not initialized, or the link to the daemon is down)',
  6050: 'UBS Engine (UBSE) failed',
  6051: 'obmm failed (opening or mapping /dev/obmm_shmdev<memid> was refused or the node is missing)',
  6060: 'locking is not supported for this share',
  6061: 'the lock is already held',
  6062: 'distributed lock failure',
  6099: 'unmapped internal error (e.g. a UBSE timeout or a daemon retry code)',
};

/** Symbolic name of an SDK return code, e.g. 6017 -> "UBSM_ERR_BUSY". */
export function ubsmCodeName(code: number): string {
  if (code === UBSM_OK) return 'UBSM_OK';
  for (const [k, v] of Object.entries(UbsmCode)) {
    if (v === code) return k === 'CHECK_RESOURCE_ERROR' ? 'UBSM_CHECK_RESOURCE_ERROR' : `UBSM_ERR_${k}`;
  }
  return `UBSM_UNKNOWN_${code}`;
}

/** What an SDK return code means, in words. */
export function ubsmCodeMeaning(code: number): string {
  return MEANINGS[code] ?? `unknown UB memory SDK return code ${code}`;
}

export interface ShmemInfo {
  name: string;
  /** real size: the requested size rounded up to the block size */
  sizeBytes: number;
  memNum: number;
  unitBytes: number;
  /** node-local memids (= minors of /dev/obmm_shmdev<memid>); valid only while attached on this node */
  memIds: number[];
}

/** Opaque handle of one mapping made through this binding. */
export interface SdkMapping {
  readonly name: string;
  readonly lengthBytes: number;
}

export interface UbsSdk {
  readonly libraryPath: string;
  initialize(): Promise<number>;
  finalize(): Promise<number>;
  allocate(region: string, name: string, sizeBytes: number, mode: number, flags: number): Promise<number>;
  deallocate(name: string): Promise<number>;
  /** addr NULL, MAP_SHARED, offset 0; lengthBytes must be the real (rounded) size. */
  map(name: string, lengthBytes: number, prot: number): Promise<{ code: number; mapping?: SdkMapping }>;
  unmap(mapping: SdkMapping): Promise<number>;
  lookup(name: string): Promise<{ code: number; info?: ShmemInfo }>;
  /** All shares whose name starts with prefix. Without max the buffer grows to fit; with max a larger
   * result gives code 6010 and `needed`. */
  listLookup(prefix: string, max?: number): Promise<{ code: number; shares: Array<{ name: string; sizeBytes: number }>; needed?: number }>;
}

export class UbsSdkLoadError extends Error {
  constructor(
    readonly path: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot load the UB memory SDK ${path}: ${reason}`, options);
    this.name = 'UbsSdkLoadError';
  }
}

interface Structs {
  options: CType;
  regionNodeDesc: CType;
  regionAttributes: CType;
  shmemDesc: CType;
  shmemInfo: CType;
}

let koffiMod: Koffi | undefined;
let structs: Structs | undefined;

function koffi(): Koffi {
  koffiMod ??= loadKoffi();
  return koffiMod;
}

function types(): Structs {
  if (structs) return structs;
  const k = koffi();
  // ubsmem_options_t is empty in the SDK (0 bytes in C, 1 in C++) and ignored; we model the 1-byte C++ view.
  const options = k.struct({ reserved: 'char' });
  const regionNodeDesc = k.struct({ host_name: k.array('char', 64, 'String'), affinity: 'bool' });
  const regionAttributes = k.struct({ host_num: 'int', hosts: k.array(regionNodeDesc, 16, 'Array') });
  const shmemDesc = k.struct({ name: k.array('char', MAX_SHM_NAME_LENGTH + 1, 'String'), size: 'size_t' });
  const shmemInfo = k.struct({
    name: k.array('char', MAX_SHM_NAME_LENGTH + 1, 'String'),
    size: 'size_t',
    mem_num: 'uint32_t',
    mem_unit_size: 'uint64_t',
    mem_id_list: k.array('uint64_t', MAX_MEMID_NUM, 'Array'),
  });
  structs = { options, regionNodeDesc, regionAttributes, shmemDesc, shmemInfo };
  return structs;
}

/** The koffi struct types, for layout tests (created on first access). */
export const ubsStructs: Readonly<Structs> = {
  get options() { return types().options; },
  get regionNodeDesc() { return types().regionNodeDesc; },
  get regionAttributes() { return types().regionAttributes; },
  get shmemDesc() { return types().shmemDesc; },
  get shmemInfo() { return types().shmemInfo; },
};

interface RawShmemInfo {
  name: string;
  size: number | bigint;
  mem_num: number;
  mem_unit_size: number | bigint;
  mem_id_list: Array<number | bigint>;
}
interface RawShmemDesc {
  name: string;
  size: number | bigint;
}

function checkSize(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative safe integer, got ${n}`);
}

const PT_LOAD = 1;

/**
 * Why the file at path cannot be a loadable ELF object, or undefined when dlopen may try it. glibc's
 * loader maps PT_LOAD segments without checking them against the file's size, so a truncated library
 * kills the process with SIGBUS instead of failing dlopen: that case must be caught before it.
 * Other defects (wrong class or machine, bad dynamic section) are left to dlopen's own message.
 */
export function elfProblem(path: string): string | undefined {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return e.code === 'ENOENT' ? undefined : e.message; // missing: dlopen says so in its words
  }
  if (buf.length < 4 || buf.readUInt32BE(0) !== 0x7f454c46) return `not an ELF file (${buf.length} bytes, no ELF magic)`;
  const cls = buf[4]; // 1: 32-bit, 2: 64-bit
  const le = buf[5] === 1;
  if ((cls !== 1 && cls !== 2) || (buf[5] !== 1 && buf[5] !== 2)) return undefined;
  const is64 = cls === 2;
  const u16 = (o: number) => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const word = (o: number) => (is64 ? Number(le ? buf.readBigUInt64LE(o) : buf.readBigUInt64BE(o)) : u32(o));
  const headerSize = is64 ? 64 : 52;
  const truncated = (need: number) => `truncated: ${buf.length} bytes, but its segments need ${need}`;
  if (buf.length < headerSize) return truncated(headerSize);
  const phoff = word(is64 ? 32 : 28);
  const phentsize = u16(is64 ? 54 : 42);
  const phnum = u16(is64 ? 56 : 44);
  const phEnd = phoff + phentsize * phnum;
  if (phEnd > buf.length) return truncated(phEnd);
  let need = 0;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (u32(ph) !== PT_LOAD) continue;
    const offset = word(ph + (is64 ? 8 : 4));
    const filesz = word(ph + (is64 ? 32 : 16));
    need = Math.max(need, offset + filesz);
  }
  return need > buf.length ? truncated(need) : undefined;
}

/** Load the SDK (or its test double) from an absolute path. Throws UbsSdkLoadError naming the path. */
export function loadUbsSdk(path: string): UbsSdk {
  let k: Koffi;
  try {
    k = koffi();
  } catch (err) {
    throw new UbsSdkLoadError(path, `koffi is not available: ${(err as Error).message}`, { cause: err });
  }
  const t = types();
  const bad = elfProblem(path);
  if (bad) throw new UbsSdkLoadError(path, bad);
  let lib: ReturnType<Koffi['load']>;
  try {
    lib = k.load(path);
  } catch (err) {
    throw new UbsSdkLoadError(path, (err as Error).message, { cause: err });
  }
  const fn = (name: string, result: string, args: Array<string | CType>): KoffiFn => {
    try {
      return lib.func(name, result, args);
    } catch (err) {
      throw new UbsSdkLoadError(path, `symbol ${name}: ${(err as Error).message}`, { cause: err });
    }
  };
  const f = {
    initialize: fn('ubsmem_initialize', 'int', ['void *']),
    finalize: fn('ubsmem_finalize', 'int', []),
    allocate: fn('ubsmem_shmem_allocate', 'int', ['const char *', 'const char *', 'size_t', 'uint32_t', 'uint64_t']),
    deallocate: fn('ubsmem_shmem_deallocate', 'int', ['const char *']),
    map: fn('ubsmem_shmem_map', 'int', ['void *', 'size_t', 'int', 'int', 'const char *', 'int64_t', k.out(k.pointer('void *'))]),
    unmap: fn('ubsmem_shmem_unmap', 'int', ['void *', 'size_t']),
    lookup: fn('ubsmem_shmem_lookup', 'int', ['const char *', k.out(k.pointer(t.shmemInfo))]),
    // the list buffer is a plain Buffer (up to 2000 x 64 bytes would not fit koffi's async scratch heap)
    listLookup: fn('ubsmem_shmem_list_lookup', 'int', ['const char *', 'void *', k.inout(k.pointer('uint32_t'))]),
  };

  // One queue: at most one SDK call in flight (see the header comment).
  let tail: Promise<unknown> = Promise.resolve();
  const call = (func: KoffiFn, ...args: unknown[]): Promise<number> => {
    const run = (): Promise<number> =>
      new Promise<number>((resolve, reject) => {
        func.async(...args, (err: unknown, res: number) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(res)));
      });
    const p = tail.then(run, run);
    tail = p.catch(() => undefined);
    return p;
  };

  const opts = Buffer.alloc(1); // non-NULL, >= 1 byte: all the SDK checks (A.2)
  const pointers = new WeakMap<SdkMapping, { ptr: unknown }>();

  return {
    libraryPath: path,
    initialize: () => call(f.initialize, opts),
    finalize: () => call(f.finalize),
    allocate(region, name, sizeBytes, mode, flags) {
      checkSize('sizeBytes', sizeBytes);
      checkSize('flags', flags);
      return call(f.allocate, region, name, sizeBytes, mode >>> 0, flags);
    },
    deallocate: (name) => call(f.deallocate, name),
    async map(name, lengthBytes, prot) {
      checkSize('lengthBytes', lengthBytes);
      const out: unknown[] = [null];
      const code = await call(f.map, null, lengthBytes, prot, MAP_SHARED, name, 0, out);
      if (code !== UBSM_OK) return { code };
      const mapping: SdkMapping = Object.freeze({ name, lengthBytes });
      pointers.set(mapping, { ptr: out[0] });
      return { code, mapping };
    },
    async unmap(mapping) {
      const held = pointers.get(mapping);
      if (!held) return UbsmCode.PARAM_INVALID; // not made by this binding, or already unmapped
      const code = await call(f.unmap, held.ptr, mapping.lengthBytes);
      if (code === UBSM_OK) pointers.delete(mapping);
      return code;
    },
    async lookup(name) {
      const raw = {} as RawShmemInfo;
      const code = await call(f.lookup, name, raw);
      if (code !== UBSM_OK) return { code };
      const memNum = Math.min(Number(raw.mem_num), MAX_MEMID_NUM);
      return {
        code,
        info: {
          name: raw.name,
          sizeBytes: Number(raw.size),
          memNum,
          unitBytes: Number(raw.mem_unit_size),
          memIds: raw.mem_id_list.slice(0, memNum).map(Number),
        },
      };
    },
    async listLookup(prefix, max) {
      if (max !== undefined) checkSize('max', max);
      let cap = max ?? 64;
      for (;;) {
        const buf = Buffer.alloc(Math.max(cap, 1) * koffi().sizeof(t.shmemDesc));
        const cnt = [cap];
        const code = await call(f.listLookup, prefix, buf, cnt);
        const n = cnt[0];
        if (code === UbsmCode.PARAM_INVALID && n > cap && max === undefined && n <= LIST_MAX) {
          cap = n; // grow once to what the daemon says it needs, then ask again
          continue;
        }
        if (code !== UBSM_OK) return code === UbsmCode.PARAM_INVALID && n > cap ? { code, shares: [], needed: n } : { code, shares: [] };
        const descs = (n ? koffi().decode(buf, t.shmemDesc, n) : []) as RawShmemDesc[];
        return { code, shares: descs.map((d) => ({ name: d.name, sizeBytes: Number(d.size) })) };
      }
    },
  };
}
