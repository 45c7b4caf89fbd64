// Validation of one ShareMemory object (the CRD's shape) into a ShareDeclaration.
// Fields this agent does not use (status, labels, spec extensions) are tolerated, as any
// Kubernetes object carries them; the fields it does use are checked strictly.
import type { Limits, ShareDeclaration } from '../model/types';
import { DNS_LABEL_MAX, dnsLabelProblem, quote } from '../model/names';
import { QuantityError, formatBytes, parseQuantityBytes } from '../model/quantity';

export const SHARE_MEMORY_API_VERSION = 'resource.ubsvirt.huawei.com/v1';
export const SHARE_MEMORY_KIND = 'ShareMemory';
/** Most entries accepted in spec.allowedNamespaces; a guard against absurd objects. */
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

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
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
 * spec.allowedNamespaces must list namespaces explicitly: "*" or any other wildcard is refused,
 * because crossing tenants is meant to be a deliberate, reviewable list.
 */
export function validateShareMemory(obj: unknown, origin: string, limits: Limits): ShareDeclaration {
  const fail = (field: string, reason: string, object?: string): never => {
    throw new DeclarationError(origin, field, reason, object);
  };
  if (!isRecord(obj)) return fail('', `expected a ShareMemory object, found ${typeName(obj)}`);
  if (obj.apiVersion !== SHARE_MEMORY_API_VERSION) {
    fail('apiVersion', `must be ${quote(SHARE_MEMORY_API_VERSION)}, found ${describe(obj.apiVersion)}`);
  }
  if (obj.kind !== SHARE_MEMORY_KIND) fail('kind', `must be ${quote(SHARE_MEMORY_KIND)}, found ${describe(obj.kind)}`);

  const meta = obj.metadata;
  if (!isRecord(meta)) return fail('metadata', meta === undefined ? 'is missing' : `must be an object, found ${typeName(meta)}`);
  const name = label(meta.name, 'metadata.name', limits.maxNameLength, fail);
  const namespace = label(meta.namespace, 'metadata.namespace', DNS_LABEL_MAX, fail);
  const id = `${namespace}/${name}`;

  const spec = obj.spec;
  if (!isRecord(spec)) return fail('spec', spec === undefined ? 'is missing' : `must be an object, found ${typeName(spec)}`, id);
  const sizeBytes = storage(spec.storage, limits, (reason) => fail('spec.storage', reason, id));

  const allowed = spec.allowedNamespaces;
  const allowedNamespaces: string[] = [];
  if (allowed !== undefined && allowed !== null) {
    if (!Array.isArray(allowed)) return fail('spec.allowedNamespaces', `must be a list of namespaces, found ${typeName(allowed)}`, id);
    if (allowed.length > MAX_ALLOWED_NAMESPACES) {
      fail('spec.allowedNamespaces', `has ${allowed.length} entries, at most ${MAX_ALLOWED_NAMESPACES} allowed`, id);
    }
    allowed.forEach((ns: unknown, i: number) => {
      const field = `spec.allowedNamespaces[${i}]`;
      if (ns === '*') fail(field, 'wildcards are not supported; list each namespace explicitly', id);
      const v = label(ns, field, DNS_LABEL_MAX, (f, r) => fail(f, r, id));
      if (!allowedNamespaces.includes(v)) allowedNamespaces.push(v);
    });
  }
  const allowExec = exec(spec.allowExec, (reason) => fail('spec.allowExec', reason, id));
  return { namespace, name, sizeBytes, allowedNamespaces, allowExec, origin };
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
