// The write side of the fake kube-apiserver (fake-apiserver.ts routes to it). It STANDS IN for
// kube-apiserver's handling of the writes the agent makes, with the semantics a client sees:
//  - ShareMemory objects by name: GET .../namespaces/NS/sharememories/NAME[/status] (404 NotFound
//    Status when absent).
//  - server-side apply: PATCH with Content-Type application/apply-patch+yaml (YAML or JSON body),
//    ?fieldManager= required (400 without), ?force=true. On the main resource the status in the
//    body is ignored; on /status everything but status is (the status subresource). Each manager's
//    fields are kept in metadata.managedFields (operation Apply, fieldsType FieldsV1, subresource
//    "status" for /status). Lists merge as the CRD's schema says: x-kubernetes-list-type map by its
//    x-kubernetes-list-map-keys, set by value, anything else atomic. A field the manager owned and
//    no longer applies is removed unless another manager owns it. A field owned by another
//    manager with a different value is a 409 Conflict naming the manager and field, unless
//    force=true (ownership moves to the applier). An apply that changes nothing writes nothing
//    (resourceVersion stays). Applying to a missing object through /status is 404.
//  - validation against the CRD's openAPIV3Schema (read from packaging/kubernetes/crd-sharememory.yaml):
//    type, required, maxItems, pattern, maxLength, map-list keys present and unique, set items
//    unique; a failure is 422 Invalid with the causes. A status-only write keeps metadata.generation.
//  - other patch types (merge, strategic, json-patch) on ShareMemory objects: 415 Unsupported Media Type.
//  - events.k8s.io/v1 Events: POST .../namespaces/NS/events creates (201; 409 AlreadyExists for a
//    taken name; 422 for a missing eventTime, reportingController, reportingInstance, action or
//    reason, a type other than Normal or Warning, a note over 1 kB, a series count under 2 or a
//    regarding.namespace other than the Event's), GET lists, PATCH .../events/NAME with
//    application/merge-patch+json (RFC 7386) updates (404 when absent). No TTL, no core/v1 view.
// It does NOT implement: create by apply, update (PUT), DELETE, dry-run, resourceVersion
// preconditions, managedFields for other operations (Update), schema defaults, CEL rules,
// generateName, or field selectors on events.
import type * as http from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';

// objects and schemas are arbitrary JSON; this is a test double
type Obj = Record<string, any>;

export interface ObjectStore {
  get(namespace: string, name: string): Obj | undefined;
  /** stores the object (bumping resourceVersion, MODIFIED to watchers); generation kept when asked */
  put(object: Obj, keepGeneration: boolean): Obj;
  nextRv(): string;
  forbidden(): boolean;
}

export interface StoredEvent extends Obj {}

const SM = /^\/apis\/resource\.ubsvirt\.huawei\.com\/v1\/namespaces\/([a-z0-9-]+)\/sharememories\/([a-z0-9.-]+)(\/status)?$/;
const EV_LIST = /^\/apis\/events\.k8s\.io\/v1\/namespaces\/([a-z0-9-]+)\/events$/;
const EV_ONE = /^\/apis\/events\.k8s\.io\/v1\/namespaces\/([a-z0-9-]+)\/events\/([^/]+)$/;
const CRD_PATH = join(__dirname, '..', '..', '..', 'packaging', 'kubernetes', 'crd-sharememory.yaml');

type Reply = (code: number, body: unknown) => void;
type Segment = string; // f:name | k:{"key":"v"} | v:"x"
type Path = Segment[];

export class FakeApiWrites {
  readonly events = new Map<string, StoredEvent>();
  private readonly schema: Obj;
  private uid = 0;

  constructor(private readonly store: ObjectStore, crdPath = CRD_PATH) {
    const crd = parseYaml(readFileSync(crdPath, 'utf8')) as Obj;
    this.schema = crd.spec.versions[0].schema.openAPIV3Schema;
  }

  handles(path: string): boolean {
    return SM.test(path) || EV_LIST.test(path) || EV_ONE.test(path);
  }

  handle(req: http.IncomingMessage, url: URL, reply: Reply): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        this.route(req.method ?? 'GET', url, String(req.headers['content-type'] ?? ''), Buffer.concat(chunks).toString('utf8'), reply);
      } catch (err) {
        reply(500, status(500, 'InternalError', `fake: ${(err as Error).message}`));
      }
    });
  }

  private route(method: string, url: URL, type: string, body: string, reply: Reply): void {
    const q = url.searchParams;
    let m = SM.exec(url.pathname);
    if (m) {
      const [, ns, name, sub] = m;
      if (this.store.forbidden()) return reply(403, status(403, 'Forbidden', `sharememories.resource.ubsvirt.huawei.com "${name}" is forbidden: User "system:node:fake" cannot ${method.toLowerCase()} resource "sharememories${sub ? '/status' : ''}" in API group "resource.ubsvirt.huawei.com" in the namespace "${ns}"`));
      const live = this.store.get(ns, name);
      if (method === 'GET') return live ? reply(200, live) : reply(404, notFound('sharememories.resource.ubsvirt.huawei.com', name));
      if (method !== 'PATCH') return reply(405, status(405, 'MethodNotAllowed', `the fake API server does not implement ${method} here`));
      if (type.split(';')[0].trim() !== 'application/apply-patch+yaml') {
        return reply(415, status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml (the fake implements server-side apply only), got ${type || 'none'}`));
      }
      const manager = q.get('fieldManager') ?? '';
      if (!manager) return reply(400, status(400, 'BadRequest', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'));
      if (manager.length > 128) return reply(422, status(422, 'Invalid', `PatchOptions.meta.k8s.io "" is invalid: fieldManager: Too long: may not be more than 128 bytes`));
      let applied: unknown;
      try {
        applied = parseYaml(body);
      } catch (err) {
        return reply(400, status(400, 'BadRequest', `error decoding YAML: ${(err as Error).message.split('\n')[0]}`));
      }
      if (!isObj(applied)) return reply(400, status(400, 'BadRequest', 'the apply configuration must be an object'));
      if (applied.apiVersion !== 'resource.ubsvirt.huawei.com/v1' || applied.kind !== 'ShareMemory') {
        return reply(400, status(400, 'BadRequest', `apiVersion and kind must be resource.ubsvirt.huawei.com/v1 ShareMemory, got ${applied.apiVersion} ${applied.kind}`));
      }
      if (applied.metadata?.name !== name || (applied.metadata?.namespace ?? ns) !== ns) {
        return reply(400, status(400, 'BadRequest', `the name of the object (${applied.metadata?.name}) does not match the name on the URL (${name})`));
      }
      if (!live) return reply(404, notFound('sharememories.resource.ubsvirt.huawei.com', name));
      return this.apply(live, applied, manager, q.get('force') === 'true', sub ? 'status' : 'main', reply);
    }
    m = EV_LIST.exec(url.pathname);
    if (m) {
      const ns = m[1];
      if (method === 'GET') return reply(200, { apiVersion: 'events.k8s.io/v1', kind: 'EventList', metadata: { resourceVersion: this.store.nextRv() }, items: [...this.events.values()].filter((e) => e.metadata.namespace === ns) });
      if (method !== 'POST') return reply(405, status(405, 'MethodNotAllowed', `${method} on the events collection`));
      let ev: Obj;
      try {
        ev = JSON.parse(body) as Obj;
      } catch {
        return reply(400, status(400, 'BadRequest', 'the body is not JSON'));
      }
      ev.metadata = { ...(ev.metadata ?? {}), namespace: ev.metadata?.namespace ?? ns };
      const key = `${ns}/${ev.metadata.name}`;
      const problems = validateEvent(ev, ns);
      if (problems.length) return reply(422, invalid('Event.events.k8s.io', ev.metadata.name, problems));
      if (this.events.has(key)) return reply(409, status(409, 'AlreadyExists', `events.events.k8s.io "${ev.metadata.name}" already exists`));
      ev.metadata = { ...ev.metadata, uid: `e0000000-0000-4000-8000-${String(++this.uid).padStart(12, '0')}`, resourceVersion: this.store.nextRv(), creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z') };
      this.events.set(key, ev);
      return reply(201, ev);
    }
    m = EV_ONE.exec(url.pathname);
    if (m) {
      const [, ns, name] = m;
      const key = `${ns}/${decodeURIComponent(name)}`;
      const live = this.events.get(key);
      if (!live) return reply(404, notFound('events.events.k8s.io', name));
      if (method === 'GET') return reply(200, live);
      if (method !== 'PATCH') return reply(405, status(405, 'MethodNotAllowed', `${method} on an event`));
      if (type.split(';')[0].trim() !== 'application/merge-patch+json') {
        return reply(415, status(415, 'UnsupportedMediaType', `the fake implements application/merge-patch+json for events, got ${type || 'none'}`));
      }
      let patch: unknown;
      try {
        patch = JSON.parse(body);
      } catch {
        return reply(400, status(400, 'BadRequest', 'the body is not JSON'));
      }
      const next = mergePatch(structuredClone(live), patch) as Obj;
      next.metadata = { ...live.metadata, resourceVersion: this.store.nextRv() };
      const problems = validateEvent(next, ns);
      if (problems.length) return reply(422, invalid('Event.events.k8s.io', name, problems));
      this.events.set(key, next);
      return reply(200, next);
    }
    reply(404, status(404, 'NotFound', 'the server could not find the requested resource'));
  }

  // ---- server-side apply ---------------------------------------------------------------------

  private apply(live: Obj, appliedIn: Obj, manager: string, force: boolean, part: 'status' | 'main', reply: Reply): void {
    const applied = structuredClone(appliedIn);
    // the status subresource takes only status; the main resource ignores it
    const scope = (o: Obj): Obj => {
      const out: Obj = {};
      for (const [k, v] of Object.entries(o)) {
        if (k === 'apiVersion' || k === 'kind') continue;
        if (k === 'metadata') {
          if (part === 'main' && isObj(v)) {
            const md: Obj = {};
            for (const f of ['labels', 'annotations']) if (v[f] !== undefined) md[f] = v[f];
            if (Object.keys(md).length) out.metadata = md;
          }
          continue;
        }
        if ((k === 'status') === (part === 'status')) out[k] = v;
      }
      return out;
    };
    const config = scope(applied);
    const subresource = part === 'status' ? 'status' : undefined;
    const managed: Obj[] = structuredClone(live.metadata.managedFields ?? []);
    const sets = new Map<number, Set<string>>();
    managed.forEach((e, i) => sets.set(i, flatten(e.fieldsV1 ?? {})));
    const mine = managed.findIndex((e) => e.manager === manager && e.operation === 'Apply' && e.subresource === subresource);
    const newFields = new Set(this.fieldsOf(config, []).map((p) => JSON.stringify(p)));

    const next = structuredClone(live);
    // conflicts: a leaf another manager owns with another value
    const conflicts: string[] = [];
    for (const f of newFields) {
      const path = JSON.parse(f) as Path;
      for (const [i, set] of sets) {
        if (i === mine || !set.has(f)) continue;
        const a = valueAt(config, path);
        const b = valueAt(next, path);
        if (isLeaf(a) && JSON.stringify(a) !== JSON.stringify(b)) {
          if (force) set.delete(f);
          else conflicts.push(`conflict with "${managed[i].manager}": ${pretty(path)}`);
        }
      }
    }
    if (conflicts.length) {
      return reply(409, { ...status(409, 'Conflict', `Apply failed with ${conflicts.length} conflict${conflicts.length > 1 ? 's' : ''}: ${conflicts.join('\n')}`), details: { causes: conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: c })) } });
    }
    // removals: owned before, not applied now, owned by nobody else; shallowest first, so a
    // list item goes whole (its key fields with it) and its children find nothing left
    const before = mine >= 0 ? sets.get(mine)! : new Set<string>();
    const others = new Set<string>();
    for (const [i, set] of sets) if (i !== mine) for (const f of set) others.add(f);
    const gone = [...before].filter((f) => !newFields.has(f) && !others.has(f)).map((f) => JSON.parse(f) as Path).sort((a, b) => a.length - b.length);
    for (const p of gone) removeAt(next, p);
    this.merge(next, config, []);
    // managedFields: this manager's set replaced; empty entries go
    const entry = { manager, operation: 'Apply', apiVersion: 'resource.ubsvirt.huawei.com/v1', time: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), fieldsType: 'FieldsV1', fieldsV1: unflatten(newFields), ...(subresource ? { subresource } : {}) };
    const out: Obj[] = [];
    managed.forEach((e, i) => {
      if (i === mine) return;
      const set = sets.get(i)!;
      if (set.size) out.push({ ...e, fieldsV1: unflatten(set) });
    });
    if (newFields.size) out.push(entry);
    const problems = this.validate(next);
    if (problems.length) return reply(422, invalid('ShareMemory.resource.ubsvirt.huawei.com', live.metadata.name, problems));
    const strip = (o: Obj) => JSON.stringify({ ...o, metadata: { ...o.metadata, managedFields: (o.metadata.managedFields ?? []).map((e: Obj) => ({ ...e, time: undefined })) } });
    next.metadata.managedFields = out;
    if (strip(next) === strip(live)) return reply(200, live); // a no-op apply writes nothing
    reply(200, this.store.put(next, part === 'status'));
  }

  /** The schema node at a path of field segments (list items: the items schema). */
  private schemaAt(path: Path): Obj | undefined {
    let s: Obj | undefined = this.schema;
    for (const seg of path) {
      if (!s) return undefined;
      if (seg.startsWith('f:')) s = s.properties?.[seg.slice(2)] ?? (s['x-kubernetes-preserve-unknown-fields'] ? {} : undefined);
      else s = s.items;
    }
    return s;
  }

  /** Every field path the config sets: leaves, map-list items (as their own path) and set values. */
  private fieldsOf(v: unknown, path: Path): Path[] {
    const s = this.schemaAt(path);
    if (isObj(v) && (!s || s.type === 'object' || s.properties)) {
      const out: Path[] = [];
      for (const [k, x] of Object.entries(v)) out.push(...this.fieldsOf(x, [...path, `f:${k}`]));
      return out;
    }
    if (Array.isArray(v) && s?.['x-kubernetes-list-type'] === 'map') {
      const keys: string[] = s['x-kubernetes-list-map-keys'] ?? [];
      const out: Path[] = [];
      for (const item of v) {
        if (!isObj(item)) continue;
        const seg = `k:${JSON.stringify(Object.fromEntries(keys.map((k) => [k, item[k]])))}`;
        out.push([...path, seg]);
        for (const [k, x] of Object.entries(item)) out.push(...this.fieldsOf(x, [...path, seg, `f:${k}`]));
      }
      return out;
    }
    if (Array.isArray(v) && s?.['x-kubernetes-list-type'] === 'set') return v.map((x) => [...path, `v:${JSON.stringify(x)}`]);
    return [path];
  }

  /** Merges the applied config into the object by the schema's list types. */
  private merge(target: Obj, config: Obj, path: Path): void {
    for (const [k, v] of Object.entries(config)) {
      const p = [...path, `f:${k}`];
      const s = this.schemaAt(p);
      if (isObj(v) && isObj(target[k]) && (!s || s.type === 'object' || s.properties)) this.merge(target[k], v, p);
      else if (Array.isArray(v) && Array.isArray(target[k]) && s?.['x-kubernetes-list-type'] === 'map') {
        const keys: string[] = s['x-kubernetes-list-map-keys'] ?? [];
        const same = (a: Obj, b: Obj) => keys.every((x) => a[x] === b[x]);
        for (const item of v) {
          const at = target[k].findIndex((t: Obj) => isObj(t) && same(t, item));
          if (at < 0) target[k].push(structuredClone(item));
          else this.merge(target[k][at], item, [...p, 'k:']);
        }
      } else if (Array.isArray(v) && Array.isArray(target[k]) && s?.['x-kubernetes-list-type'] === 'set') {
        for (const x of v) if (!target[k].some((t: unknown) => JSON.stringify(t) === JSON.stringify(x))) target[k].push(x);
      } else target[k] = structuredClone(v);
    }
  }

  private validate(obj: Obj): string[] {
    const problems: string[] = [];
    const { metadata, ...rest } = obj;
    void metadata;
    check(rest, this.schema, '', problems);
    return problems;
  }
}

function check(v: unknown, s: Obj, at: string, out: string[]): void {
  if (v === undefined || v === null) return;
  const where = at || '<root>';
  if (s.anyOf && s['x-kubernetes-int-or-string']) {
    if (typeof v !== 'string' && !Number.isInteger(v)) out.push(`${where}: Invalid value: must be an integer or a string`);
    if (typeof v === 'string' && s.pattern && !new RegExp(s.pattern).test(v)) out.push(`${where}: Invalid value: "${v}": should match '${s.pattern}'`);
    return;
  }
  switch (s.type) {
    case 'object':
      if (!isObj(v)) return void out.push(`${where}: Invalid value: must be of type object`);
      for (const r of s.required ?? []) if (v[r] === undefined) out.push(`${at}.${r}: Required value`);
      for (const [k, x] of Object.entries(v)) {
        const sub = s.properties?.[k];
        if (sub) check(x, sub, `${at}.${k}`, out);
      }
      return;
    case 'array': {
      if (!Array.isArray(v)) return void out.push(`${where}: Invalid value: must be of type array`);
      if (s.maxItems !== undefined && v.length > s.maxItems) out.push(`${where}: Too many: ${v.length}: must have at most ${s.maxItems} items`);
      v.forEach((x, i) => check(x, s.items ?? {}, `${at}[${i}]`, out));
      const lt = s['x-kubernetes-list-type'];
      if (lt === 'map') {
        const keys: string[] = s['x-kubernetes-list-map-keys'] ?? [];
        const seen = new Set<string>();
        v.forEach((x, i) => {
          for (const k of keys) if (!isObj(x) || x[k] === undefined) out.push(`${at}[${i}].${k}: Required value: the list map key`);
          const id = JSON.stringify(keys.map((k) => (isObj(x) ? x[k] : undefined)));
          if (seen.has(id)) out.push(`${at}[${i}]: Duplicate value: ${id}`);
          seen.add(id);
        });
      } else if (lt === 'set') {
        const seen = new Set<string>();
        v.forEach((x, i) => {
          if (seen.has(JSON.stringify(x))) out.push(`${at}[${i}]: Duplicate value: ${JSON.stringify(x)}`);
          seen.add(JSON.stringify(x));
        });
      }
      return;
    }
    case 'string':
      if (typeof v !== 'string') return void out.push(`${where}: Invalid value: must be of type string`);
      if (s.maxLength !== undefined && v.length > s.maxLength) out.push(`${where}: Too long: may not be longer than ${s.maxLength}`);
      if (s.pattern && !new RegExp(s.pattern).test(v)) out.push(`${where}: Invalid value: "${v}": should match '${s.pattern}'`);
      if (s.format === 'date-time' && Number.isNaN(Date.parse(v))) out.push(`${where}: Invalid value: "${v}": must be a date-time`);
      return;
    case 'integer':
      if (!Number.isInteger(v)) out.push(`${where}: Invalid value: must be of type integer`);
      else if (s.minimum !== undefined && (v as number) < s.minimum) out.push(`${where}: Invalid value: ${v}: should be greater than or equal to ${s.minimum}`);
      return;
    case 'boolean':
      if (typeof v !== 'boolean') out.push(`${where}: Invalid value: must be of type boolean`);
      return;
    default:
  }
}

function validateEvent(ev: Obj, ns: string): string[] {
  const p: string[] = [];
  if (!ev.metadata?.name) p.push('metadata.name: Required value: name or generateName is required');
  if (ev.metadata?.namespace !== ns) p.push(`metadata.namespace: Invalid value: "${ev.metadata?.namespace}": does not match the namespace on the URL`);
  for (const f of ['eventTime', 'reportingController', 'reportingInstance', 'action', 'reason']) if (!ev[f]) p.push(`${f}: Required value`);
  if (ev.eventTime && Number.isNaN(Date.parse(ev.eventTime))) p.push(`eventTime: Invalid value: "${ev.eventTime}"`);
  if (ev.type !== 'Normal' && ev.type !== 'Warning') p.push(`type: Unsupported value: "${ev.type}": supported values: "Normal", "Warning"`);
  if (typeof ev.note === 'string' && Buffer.byteLength(ev.note) > 1024) p.push('note: Too long: may not be more than 1024 bytes');
  for (const f of ['action', 'reason', 'reportingInstance']) if (typeof ev[f] === 'string' && ev[f].length > 128) p.push(`${f}: Too long: may not be more than 128 bytes`);
  if (ev.series !== undefined && ev.series !== null) {
    if (!Number.isInteger(ev.series.count) || ev.series.count < 2) p.push('series.count: Invalid value: should be at least 2');
    if (!ev.series.lastObservedTime) p.push('series.lastObservedTime: Required value');
  }
  if (ev.regarding?.namespace && ev.regarding.namespace !== ns) p.push(`regarding.namespace: Invalid value: "${ev.regarding.namespace}": does not match event.namespace`);
  return p;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isLeaf(v: unknown): boolean {
  return !isObj(v);
}

function valueAt(o: unknown, path: Path): unknown {
  let cur: unknown = o;
  for (const seg of path) {
    if (cur === undefined) return undefined;
    if (seg.startsWith('f:')) cur = isObj(cur) ? cur[seg.slice(2)] : undefined;
    else if (seg.startsWith('k:')) {
      const key = JSON.parse(seg.slice(2)) as Obj;
      cur = Array.isArray(cur) ? cur.find((x) => isObj(x) && Object.entries(key).every(([k, v]) => x[k] === v)) : undefined;
    } else if (seg.startsWith('v:')) {
      const want = seg.slice(2);
      cur = Array.isArray(cur) ? cur.find((x) => JSON.stringify(x) === want) : undefined;
    }
  }
  return cur;
}

function removeAt(o: Obj, path: Path): void {
  const parent = valueAt(o, path.slice(0, -1));
  const seg = path[path.length - 1];
  if (seg.startsWith('f:') && isObj(parent)) delete parent[seg.slice(2)];
  else if (Array.isArray(parent)) {
    const at = parent.indexOf(valueAt(o, path));
    if (at >= 0) parent.splice(at, 1);
  }
}

/** FieldsV1 ({"f:status": {"f:nodes": {"k:{...}": {".": {}, "f:holders": {}}}}}) to paths. */
function flatten(tree: Obj, prefix: Path = []): Set<string> {
  const out = new Set<string>();
  for (const [k, v] of Object.entries(tree)) {
    if (k === '.') {
      out.add(JSON.stringify(prefix));
      continue;
    }
    const p = [...prefix, k];
    if (!isObj(v) || Object.keys(v).length === 0) out.add(JSON.stringify(p));
    else for (const f of flatten(v, p)) out.add(f);
  }
  return out;
}

function unflatten(paths: Set<string>): Obj {
  const root: Obj = {};
  const all = [...paths].map((p) => JSON.parse(p) as Path);
  const prefixes = new Set(all.flatMap((p) => p.slice(0, -1).map((_, i) => JSON.stringify(p.slice(0, i + 1)))));
  for (const p of all) {
    let cur = root;
    for (const seg of p) cur = cur[seg] ??= {};
    if (prefixes.has(JSON.stringify(p))) cur['.'] = {}; // owned itself and has owned children
  }
  return root;
}

function pretty(path: Path): string {
  return path.map((s) => (s.startsWith('f:') ? `.${s.slice(2)}` : s.startsWith('k:') ? `[${Object.entries(JSON.parse(s.slice(2)) as Obj).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}]` : `[=${s.slice(2)}]`)).join('');
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return patch;
  const out: Obj = isObj(target) ? target : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function status(code: number, reason: string, message: string): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

function notFound(resource: string, name: string): Obj {
  return { ...status(404, 'NotFound', `${resource} "${name}" not found`), details: { name } };
}

function invalid(kind: string, name: string, causes: string[]): Obj {
  return { ...status(422, 'Invalid', `${kind} "${name}" is invalid: ${causes.join(', ')}`), details: { name, causes: causes.map((message) => ({ reason: 'FieldValueInvalid', message })) } };
}
