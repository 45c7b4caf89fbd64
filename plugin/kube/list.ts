// One page of a list (GET ...?limit=N[&continue=T]): its items, handed to the caller one at a
// time, and the page's metadata (resourceVersion, continue token).
import type * as http from 'node:http';
import { isObject, type PlainObject } from '../model';
import { BodyTooLargeError, KubeApiError, readBody } from './request';

export interface ListPage {
  resourceVersion: string;
  /** the token for the next page; absent on the last */
  continue?: string;
}

export interface ListPageOptions {
  /** "kubernetes https://host:6443", the start of every message */
  where: string;
  timeoutMs: number;
  /** a larger page fails */
  maxBytes: number;
  /** the limit asked for, named when a page is too large (0 = no paging) */
  pageSize: number;
}

export function metaOf(obj: unknown): PlainObject {
  return isObject(obj) && isObject(obj.metadata) ? obj.metadata : {};
}

/** Reads a 200 list response; rejects with a KubeApiError naming the server. */
export async function readListPage(res: http.IncomingMessage, opts: ListPageOptions, onItem: (raw: unknown) => void): Promise<ListPage> {
  let body: string;
  try {
    body = await readBody(res, opts.timeoutMs, opts.maxBytes);
  } catch (err) {
    if (!(err instanceof BodyTooLargeError)) throw err;
    throw new KubeApiError(`${opts.where}: list: ${err.message} (a page of ${opts.pageSize || 'all'} objects; lower pageSize)`);
  }
  let page: unknown;
  try {
    page = JSON.parse(body);
  } catch {
    throw new KubeApiError(`${opts.where}: list: the response is not JSON`);
  }
  if (!isObject(page) || !Array.isArray(page.items)) throw new KubeApiError(`${opts.where}: list: the response has no items`);
  const meta = metaOf(page);
  if (typeof meta.resourceVersion !== 'string' || !meta.resourceVersion) {
    throw new KubeApiError(`${opts.where}: list: the response has no metadata.resourceVersion`);
  }
  for (const item of page.items) onItem(item);
  const cont = typeof meta.continue === 'string' && meta.continue ? meta.continue : undefined;
  return { resourceVersion: meta.resourceVersion, ...(cont ? { continue: cont } : {}) };
}
