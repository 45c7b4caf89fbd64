// One page of a list (GET ...?limit=N[&continue=T]), read as it streams: each item is handed to the
// caller as soon as its last byte arrives, and nothing of it is kept after that. So what a page
// costs the reader is one item at a time (at most maxItemBytes), whatever the page's size: a list
// of objects that tenants made as large as the API server allows no longer has to fit in memory
// at once (a page of 500 such objects is some 150 MiB of JSON).
//
// The scanner follows JSON's structure (strings, objects, arrays) byte by byte outside strings and
// with indexOf inside them (annotations are long strings). It keeps: the page's metadata (at most
// MAX_PAGE_METADATA_BYTES), the item being read (at most maxItemBytes; past that its bytes are
// dropped and only its metadata.namespace and metadata.name are picked up, to name it), and the
// keys on the path to where it is. Everything else is skipped as it passes.
import type * as http from 'node:http';
import { isObject, type PlainObject } from '../model';
import { KubeApiError } from './request';

export interface ListPage {
  resourceVersion: string;
  /** the token for the next page; absent on the last */
  continue?: string;
}

/** One item of a page: the parsed object, or how large an item was that was too large to read. */
export type ListItem = { object: unknown } | { tooLarge: { bytes: number; namespace?: string; name?: string } };

export interface ListPageOptions {
  /** "kubernetes https://host:6443", the start of every message */
  where: string;
  /** the whole page must arrive within this */
  timeoutMs: number;
  /** an item larger than this is not parsed: the caller gets `tooLarge` for it */
  maxItemBytes: number;
}

/** The page's own metadata (resourceVersion, continue, remainingItemCount) is a few hundred bytes. */
export const MAX_PAGE_METADATA_BYTES = 64 * 1024;
/** JSON nesting deeper than this is refused (a ShareMemory with managedFields is under 12 deep). */
const MAX_DEPTH = 100;
/** Keys longer than this are not remembered (no key the scanner looks for is that long). */
const MAX_KEY_BYTES = 64;
/** metadata.name and namespace of an oversized item: a DNS subdomain is at most 253 characters. */
const MAX_NAME_BYTES = 512;

export function metaOf(obj: unknown): PlainObject {
  return isObject(obj) && isObject(obj.metadata) ? obj.metadata : {};
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** A container on the path: its key so far (objects), and what the scanner does with it. */
interface Frame {
  array: boolean;
  /** in an object: the next string is a key */
  expectKey: boolean;
  /** the current key in an object (undefined: too long or not yet read) */
  key: string | undefined;
  /** the page's "items" array, the page's "metadata", one item, or an item's metadata */
  role?: 'items' | 'page-metadata' | 'item' | 'item-metadata';
}

/** A value being kept as it streams: its bytes so far, up to its cap. */
interface Capture {
  kind: 'item' | 'page-metadata' | 'name' | 'namespace' | 'key';
  parts: Buffer[];
  bytes: number;
  cap: number;
  over: boolean;
}

class ListPageScanner {
  private readonly stack: Frame[] = [];
  private inString = false;
  /** the string being read ends a scalar item (a string directly in items) */
  private stringIsItem = false;
  /** backslashes just before the end of the last chunk, inside a string (odd: the next byte is escaped) */
  private backslashes = 0;
  /** a bare scalar (number, true, false, null) directly in items: its bytes */
  private inScalarItem = false;
  private item: Capture | undefined;
  private meta: Capture | undefined;
  private str: Capture | undefined;
  private itemName: string | undefined;
  private itemNamespace: string | undefined;
  private sawItems = false;
  private done = false;
  pageMetadata: Buffer | undefined;

  constructor(
    private readonly maxItemBytes: number,
    private readonly onItem: (raw: Buffer | { bytes: number; namespace?: string; name?: string }) => void,
    private readonly fail: (reason: string) => never,
  ) {}

  get complete(): boolean {
    return this.done;
  }

  get hadItems(): boolean {
    return this.sawItems;
  }

  write(chunk: Buffer): void {
    let i = 0;
    const n = chunk.length;
    // open captures take this chunk from its start
    const from = { item: 0, meta: 0, str: 0 };
    while (i < n) {
      if (this.inString) {
        const q = chunk.indexOf(QUOTE, i);
        if (q < 0) {
          this.backslashes = trailingBackslashes(chunk, i, n, this.backslashes);
          break;
        }
        const escaped = trailingBackslashes(chunk, i, q, this.backslashes) % 2 === 1;
        this.backslashes = 0;
        if (escaped) {
          i = q + 1;
          continue;
        }
        this.inString = false;
        if (this.str) {
          this.take(this.str, chunk, from.str, q);
          this.endString(this.str);
          this.str = undefined;
        }
        i = q + 1;
        if (this.stringIsItem) {
          this.stringIsItem = false;
          this.endItem(chunk, from.item, i);
        }
        continue;
      }
      const c = chunk[i];
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
        i++;
        continue;
      }
      const top = this.stack[this.stack.length - 1];
      if (this.inScalarItem && (c === 0x2c || c === 0x5d)) {
        this.inScalarItem = false;
        this.endItem(chunk, from.item, i);
      }
      if (this.done) this.fail('more after the end of the list');
      if (c === QUOTE) {
        this.inString = true;
        this.backslashes = 0;
        if (top && !top.array && top.expectKey) {
          this.str = capture('key', MAX_KEY_BYTES);
        } else if (top?.role === 'item-metadata' && (top.key === 'name' || top.key === 'namespace')) {
          this.str = capture(top.key, MAX_NAME_BYTES);
        } else if (top?.role === 'items') {
          this.startItem();
          from.item = i;
          this.stringIsItem = true;
        }
        from.str = i + 1;
      } else if (c === 0x7b || c === 0x5b) {
        if (this.stack.length >= MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
        const frame: Frame = { array: c === 0x5b, expectKey: c === 0x7b, key: undefined };
        if (!top) {
          if (frame.array) this.fail('the response has no items');
        } else if (top.role === 'items') {
          frame.role = 'item';
          this.startItem();
          from.item = i;
        } else if (this.stack.length === 1 && top.key === 'items' && frame.array) {
          frame.role = 'items';
          this.sawItems = true;
        } else if (this.stack.length === 1 && top.key === 'metadata' && !frame.array) {
          frame.role = 'page-metadata';
          this.meta = capture('page-metadata', MAX_PAGE_METADATA_BYTES);
          from.meta = i;
        } else if (top.role === 'item' && top.key === 'metadata' && !frame.array) {
          frame.role = 'item-metadata';
        }
        this.stack.push(frame);
      } else if (c === 0x7d || c === 0x5d) {
        const frame = this.stack.pop();
        if (!frame || frame.array !== (c === 0x5d)) this.fail('the response is not JSON');
        if (frame.role === 'item') this.endItem(chunk, from.item, i + 1);
        else if (frame.role === 'page-metadata' && this.meta) {
          this.take(this.meta, chunk, from.meta, i + 1);
          if (this.meta.over) this.fail(`the list's metadata is larger than ${MAX_PAGE_METADATA_BYTES} bytes`);
          this.pageMetadata = Buffer.concat(this.meta.parts);
          this.meta = undefined;
        }
        if (this.stack.length === 0) this.done = true;
      } else if (c === 0x3a) {
        if (top && !top.array) top.expectKey = false;
      } else if (c === 0x2c) {
        if (top && !top.array) {
          top.expectKey = true;
          top.key = undefined;
        }
      } else if (!top) {
        this.fail('the response has no items');
      } else if (top.role === 'items' && !this.inScalarItem) {
        // a number, true, false or null where an object belongs: handed on, to be reported
        this.startItem();
        from.item = i;
        this.inScalarItem = true;
      }
      i++;
    }
    // what is still open takes the rest of this chunk
    if (this.item) this.take(this.item, chunk, from.item, n);
    if (this.meta) this.take(this.meta, chunk, from.meta, n);
    if (this.str) this.take(this.str, chunk, from.str, n);
  }

  private take(c: Capture, chunk: Buffer, start: number, end: number): void {
    if (c.over || end <= start) {
      c.bytes += Math.max(0, end - start);
      return;
    }
    c.bytes += end - start;
    if (c.bytes > c.cap) {
      c.over = true;
      c.parts = []; // dropped now: an oversized item costs nothing more while it streams past
      return;
    }
    // a copy: a slice would keep the whole chunk alive as long as the capture
    c.parts.push(Buffer.from(chunk.subarray(start, end)));
  }

  private endString(s: Capture): void {
    if (s.over) {
      if (s.kind === 'key') this.stack[this.stack.length - 1].key = undefined;
      return;
    }
    let value: string;
    try {
      value = JSON.parse(`"${Buffer.concat(s.parts).toString('utf8')}"`) as string;
    } catch {
      this.fail('the response is not JSON');
    }
    if (s.kind === 'key') this.stack[this.stack.length - 1].key = value;
    else if (s.kind === 'name') this.itemName = value;
    else if (s.kind === 'namespace') this.itemNamespace = value;
  }

  private startItem(): void {
    this.item = capture('item', this.maxItemBytes);
    this.itemName = undefined;
    this.itemNamespace = undefined;
  }

  private endItem(chunk: Buffer, start: number, end: number): void {
    const item = this.item;
    if (!item) return;
    this.take(item, chunk, start, end);
    this.item = undefined;
    if (item.over) {
      this.onItem({
        bytes: item.bytes,
        ...(this.itemNamespace !== undefined ? { namespace: this.itemNamespace } : {}),
        ...(this.itemName !== undefined ? { name: this.itemName } : {}),
      });
    } else {
      this.onItem(Buffer.concat(item.parts, item.bytes));
    }
  }
}

function capture(kind: Capture['kind'], cap: number): Capture {
  return { kind, parts: [], bytes: 0, cap, over: false };
}

/** How many backslashes end chunk[start, end), plus `carry` if all of it is backslashes. */
function trailingBackslashes(chunk: Buffer, start: number, end: number, carry: number): number {
  let k = end;
  while (k > start && chunk[k - 1] === BACKSLASH) k--;
  return end - k + (k === start ? carry : 0);
}

/** Reads a 200 list response item by item; rejects with a KubeApiError naming the server. */
export function readListPage(res: http.IncomingMessage, opts: ListPageOptions, onItem: (item: ListItem) => void): Promise<ListPage> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | undefined, page?: ListPage) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        res.destroy();
        reject(err);
      } else resolve(page!);
    };
    const fail = (reason: string): never => {
      throw new KubeApiError(`${opts.where}: list: ${reason.startsWith('the response') ? reason : `the response is not a list (${reason})`}`);
    };
    const scanner = new ListPageScanner(
      opts.maxItemBytes,
      (raw) => {
        if (!Buffer.isBuffer(raw)) return onItem({ tooLarge: raw });
        let object: unknown;
        try {
          object = JSON.parse(raw.toString('utf8'));
        } catch {
          fail('the response is not JSON');
        }
        onItem({ object });
      },
      fail,
    );
    const timer = setTimeout(() => res.destroy(new Error(`the response did not complete within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    res.on('data', (chunk: Buffer) => {
      if (settled) return;
      try {
        scanner.write(chunk);
      } catch (err) {
        finish(err as Error);
      }
    });
    res.on('end', () => {
      if (!scanner.complete) return finish(new KubeApiError(`${opts.where}: list: the response is not JSON`));
      if (!scanner.hadItems) return finish(new KubeApiError(`${opts.where}: list: the response has no items`));
      let meta: unknown;
      try {
        meta = scanner.pageMetadata ? JSON.parse(scanner.pageMetadata.toString('utf8')) : {};
      } catch {
        return finish(new KubeApiError(`${opts.where}: list: the response is not JSON`));
      }
      const m = isObject(meta) ? meta : {};
      if (typeof m.resourceVersion !== 'string' || !m.resourceVersion) {
        return finish(new KubeApiError(`${opts.where}: list: the response has no metadata.resourceVersion`));
      }
      const cont = typeof m.continue === 'string' && m.continue ? m.continue : undefined;
      finish(undefined, { resourceVersion: m.resourceVersion, ...(cont ? { continue: cont } : {}) });
    });
    res.on('error', (err) => finish(new Error(`reading the response: ${err.message}`)));
    res.on('close', () => {
      if (!res.complete) finish(new Error('the connection closed before the response was complete'));
    });
  });
}
