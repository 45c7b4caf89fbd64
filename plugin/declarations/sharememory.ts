// Validation of one ShareMemory object (the CRD's shape) into a ShareDeclaration.
// Fields this agent does not use (status, labels, spec extensions) are tolerated, as any
// Kubernetes object carries them; the fields it does use are checked strictly.
import type { Limits, ShareDeclaration } from '../model/types';
import { DNS_LABEL_MAX, dnsLabelProblem, quote } from '../model/names';
import { QuantityError, formatBytes, parseQuantityBytes } from '../model/quantity';
import { isObject } from '../model/object';

export const SHARE_MEMORY_API_VERSION = 'resource.ubsvirt.huawei.com/v1';
export const SHARE_MEMORY_KIND = 'ShareMemory';
/** Most entries accepted in spec.allowedNamespaces (and in spec.readOnlyNamespaces); a guard against absurd objects. */
export const MAX_ALLOWED_NAMESPACES = 1024;

/** A declaration that cannot be used: names where (file), what (field) and why. */
export class DeclarationError extends Error {
  constructor(
    /** the file (and document) or "kubernetes" */
    readonly origin: string,
    /** the field path, e.g. "spec.storage", or "" for the document as a whole */
    readonly field: string,
    readonly reason: string,
    /** "namespace/name" when known, to tell documents of one file apart */
    readonly object?: string,
  ) {
    const what = object ? ` ShareMemory ${object}:` : '';
    super(`${origin}:${what} ${field ? `${field}: ` : ''}${reason}`);
    this.name = 'DeclarationError';
  }
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return `a ${typeof v}`;
}

/**
 * Check `obj` as a ShareMemory and return its declaration; throw DeclarationError otherwise.
 * `origin` names where it came from (a file path, with the document number for multi-document
 * files) and becomes the declaration's origin.
 *
 * spec.allowedNamespaces lists the other namespaces that may bind the share (read-write, or
 * read-only with ":ro"); spec.readOnlyNamespaces those that may bind it only read-only.
 */
export function validateShareMemory(obj: unknown, origin: string, limits: Limits): ShareDeclaration {
  const fail = (field: string, reason: string, object?: string): never => {
    throw new DeclarationError(origin, field, reason, object);
  };
  if (!isObject(obj)) return fail('', `expected a ShareMemory object, found ${typeName(obj)}`);
  if (obj.apiVersion !== SHARE_MEMORY_API_VERSION) {
    fail('apiVersion', `must be ${quote(SHARE_MEMORY_API_VERSION)}, found ${describe(obj.apiVersion)}`);
  }
  if (obj.kind !== SHARE_MEMORY_KIND) fail('kind', `must be ${quote(SHARE_MEMORY_KIND)}, found ${describe(obj.kind)}`);

  const meta = obj.metadata;
  if (!isObject(meta)) return fail('metadata', meta === undefined ? 'is missing' : `must be an object, found ${typeName(meta)}`);
  const name = label(meta.name, 'metadata.name', limits.maxNameLength, fail);
  const namespace = label(meta.namespace, 'metadata.namespace', DNS_LABEL_MAX, fail);
  const id = `${namespace}/${name}`;

  const spec = obj.spec;
  if (!isObject(spec)) return fail('spec', spec === undefined ? 'is missing' : `must be an object, found ${typeName(spec)}`, id);
  const sizeBytes = storage(spec.storage, limits, (reason) => fail('spec.storage', reason, id));

  const allowedNamespaces = namespaceList(spec.allowedNamespaces, 'spec.allowedNamespaces', id, fail);
  const readOnlyNamespaces = namespaceList(spec.readOnlyNamespaces, 'spec.readOnlyNamespaces', id, fail);
  // sets, not includes(): an object may list 2 x 1,024 namespaces, and a list of 100,000 objects is validated at once
  const allowed = new Set(allowedNamespaces);
  readOnlyNamespaces.forEach((ns) => {
    const field = () => `spec.readOnlyNamespaces[${(spec.readOnlyNamespaces as unknown[]).indexOf(ns)}]`;
    if (ns === namespace) fail(field(), `${quote(ns)} is the share's own namespace, which always has read-write access`, id);
    if (allowed.has(ns)) fail(field(), `${quote(ns)} is also in spec.allowedNamespaces; list a namespace in one of the two (read-only here, read-write there)`, id);
  });
  const allowExec = exec(spec.allowExec, (reason) => fail('spec.allowExec', reason, id));
  // optional fields only when set: a declaration written before them reads back as it was
  const decl: ShareDeclaration = { namespace, name, sizeBytes, allowedNamespaces, origin };
  if (readOnlyNamespaces.length) decl.readOnlyNamespaces = readOnlyNamespaces;
  if (allowExec) decl.allowExec = true;
  return decl;
}

/** The most grants readGrants reads: the shipped CRD's 256 per list, twice. */
const MAX_READ_GRANTS = 512;

/**
 * The namespaces an object grants (spec.allowedNamespaces and spec.readOnlyNamespaces), read
 * leniently from an object that failed validation, so that the pods it grants can be told why
 * this node refuses it: only entries that are namespace names count. Undefined when the spec
 * cannot be read or the lists are longer than the CRD allows (then only the owner's pods are told).
 */
export function readGrants(obj: unknown): string[] | undefined {
  if (!isObject(obj) || !isObject(obj.spec)) return undefined;
  const out = new Set<string>();
  for (const list of [obj.spec.allowedNamespaces, obj.spec.readOnlyNamespaces]) {
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list) || list.length > MAX_READ_GRANTS) return undefined;
    for (const ns of list) if (typeof ns === 'string' && !dnsLabelProblem(ns, DNS_LABEL_MAX)) out.add(ns);
  }
  return out.size > MAX_READ_GRANTS ? undefined : [...out];
}

/**
 * A list of namespaces (spec.allowedNamespaces or spec.readOnlyNamespaces), duplicates folded.
 * Listed explicitly: "*" or any other wildcard is refused, because crossing tenants is meant to be
 * a deliberate, reviewable list.
 */
function namespaceList(v: unknown, field: string, id: string, fail: (field: string, reason: string, object?: string) => never): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  if (v === undefined || v === null) return out;
  if (!Array.isArray(v)) return fail(field, `must be a list of namespaces, found ${typeName(v)}`, id);
  if (v.length > MAX_ALLOWED_NAMESPACES) fail(field, `has ${v.length} entries, at most ${MAX_ALLOWED_NAMESPACES} allowed`, id);
  v.forEach((ns: unknown, i: number) => {
    const f = `${field}[${i}]`;
    if (ns === '*') fail(f, 'wildcards are not supported; list each namespace explicitly', id);
    const n = label(ns, f, DNS_LABEL_MAX, (ff, r) => fail(ff, r, id));
    if (!seen.has(n)) {
      seen.add(n);
      out.push(n);
    }
  });
  return out;
}

function describe(v: unknown): string {
  return typeof v === 'string' ? quote(v) : v === undefined ? 'nothing' : typeName(v);
}

function label(v: unknown, field: string, max: number, fail: (field: string, reason: string) => never): string {
  if (v === undefined) return fail(field, 'is missing');
  if (typeof v !== 'string') return fail(field, `must be a string, found ${typeName(v)}`);
  const problem = dnsLabelProblem(v, max);
  if (problem) return fail(field, `${quote(v)} ${problem}`);
  return v;
}

// spec.allowExec: shares are noexec unless their owner says an application maps code from them.
function exec(v: unknown, fail: (reason: string) => never): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') return fail(`must be true or false, found ${describe(v)}`);
  return v;
}

function storage(v: unknown, limits: Limits, fail: (reason: string) => never): number {
  if (v === undefined) return fail('is missing (the share size, e.g. "5120Mi")');
  // YAML turns `storage: 1073741824` into a number; Kubernetes accepts that form too.
  let text: string;
  if (typeof v === 'string') text = v;
  else if (typeof v === 'number' && Number.isFinite(v)) text = String(v);
  else return fail(`must be a quantity such as "5120Mi", found ${typeName(v)}`);
  let bytes: number;
  try {
    bytes = parseQuantityBytes(text);
  } catch (e) {
    return fail(e instanceof QuantityError ? `${quote(text)} ${e.reason}` : String(e));
  }
  if (bytes < limits.minShareBytes || bytes > limits.maxShareBytes) {
    fail(`${quote(text)} is ${formatBytes(bytes)}, outside the allowed range ${formatBytes(limits.minShareBytes)} to ${formatBytes(limits.maxShareBytes)}`);
  }
  return bytes;
}
