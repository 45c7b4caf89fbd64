// Decide whether a container may have the shares it asks for: each ref must be declared, be
// the pod's own or shared with its namespace (read-only where only that is granted), fit the
// limits, and fit on the node. A share of another namespace that is not shared with the pod's
// gets one answer whether it exists, is refused on this node, or not (docs/security.md); the
// refusal's operatorDetail keeps the difference for the agent's log. A share the cluster declares
// but this node refuses (its own limits) is "declared but refused on this node" to the pods it grants.
import { type Limits, type ShareDeclaration, type ShareRef, RefusalError } from '../model/types';
import { shareKey } from '../model/names';
import { formatBytes } from '../model/quantity';
import type { DeclarationStore } from '../declarations/store';

/** RefusalError reasons (metric labels). 'syntax' comes from annotations.ts. */
export type RefusalReason =
  | 'syntax'
  | 'unknown-share'
  | 'declaration-removed'
  | 'declaration-refused'
  | 'forbidden-namespace'
  | 'read-only-grant'
  | 'size-limit'
  | 'node-limit';

/**
 * Every reason a binding is refused with, for `nri_memshare_refusals_total{reason}`'s series to
 * exist at 0 from the start (so `increase()` sees the first refusal): RefusalReason's, and the
 * service's own (the backend is down, a share still being made, the backend failed).
 */
export const REFUSAL_REASONS: readonly string[] = [
  'syntax', 'unknown-share', 'declaration-removed', 'declaration-refused', 'forbidden-namespace', 'read-only-grant', 'size-limit', 'node-limit',
  'backend-unavailable', 'pending', 'backend',
] satisfies ReadonlyArray<RefusalReason | 'backend-unavailable' | 'pending' | 'backend'>;

export interface AuthorizeRequest {
  /** the annotation key the refs came from (for messages), or the claim ("ResourceClaim ns/name") */
  annotation: string;
  /** how the asker gets read-only access, for the read-only-grant refusal (default: the annotation's `<ref>:ro`) */
  readOnlyHow?: (key: string) => string;
  refs: readonly ShareRef[];
  podNamespace: string;
  store: Pick<DeclarationStore, 'get' | 'refused'>;
  limits: Limits;
  /** true if the share is already present on this node (so it costs no new memory) */
  isPresent: (namespace: string, name: string) => boolean;
  /** bytes of all shares present on this node now */
  nodeBytesInUse: number;
}

export interface AuthorizedRef {
  ref: ShareRef;
  declaration: ShareDeclaration;
}

/**
 * Resolve every ref to its declaration, in order, or throw RefusalError for the first one that
 * cannot be honoured. Messages read `<annotation>: share "<ns>/<name>": <reason>`.
 */
export function authorize(req: AuthorizeRequest): AuthorizedRef[] {
  const { annotation, podNamespace, limits } = req;
  const out: AuthorizedRef[] = [];
  let newBytes = 0;
  for (const ref of req.refs) {
    const key = shareKey(ref.namespace, ref.name);
    const refusal = (reason: RefusalReason, text: string, operatorText?: string) =>
      new RefusalError(`${annotation}: share "${key}": ${text}`, reason, operatorText === undefined ? undefined : `${annotation}: share "${key}": ${operatorText}`);
    const present = req.isPresent(ref.namespace, ref.name);
    const decl = req.store.get(ref.namespace, ref.name);
    const refused = decl ? undefined : req.store.refused(ref.namespace, ref.name);
    const foreign = ref.namespace !== podNamespace;
    const granted = decl !== undefined
      ? decl.allowedNamespaces.includes(podNamespace) || (decl.readOnlyNamespaces?.includes(podNamespace) ?? false)
      : refused?.grants?.includes(podNamespace) ?? false;
    if (foreign && !granted) {
      // One answer whether the share is declared, refused here, removed or never was: anything
      // else tells a tenant which share names other namespaces use. The reason (a metric label)
      // and the log keep the operator's distinction.
      const notGranted = `not granted to namespace "${podNamespace}" (no ShareMemory ${key} on this node lists "${podNamespace}" in spec.allowedNamespaces or spec.readOnlyNamespaces)`;
      if (decl) {
        throw refusal('forbidden-namespace', notGranted, `belongs to namespace "${ref.namespace}" and its ShareMemory does not list "${podNamespace}" in spec.allowedNamespaces`);
      }
      if (refused) throw refusal('declaration-refused', notGranted, `declared but refused on this node: ${refused.reason}; "${podNamespace}" is not among the namespaces it grants`);
      if (present) throw refusal('declaration-removed', notGranted, `its ShareMemory ${key} was removed; it takes no new bindings`);
      throw refusal('unknown-share', notGranted, `not declared (no ShareMemory ${key} on this node)`);
    }
    if (!decl) {
      if (refused) {
        // the pods it grants may know it exists: they are told what to fix
        throw refusal('declaration-refused', `declared but refused on this node: ${refused.reason}${present ? ' (current users keep it until they end)' : ''}`);
      }
      if (present) {
        throw refusal('declaration-removed', `its ShareMemory ${key} was removed; it takes no new bindings (current users keep it until they end)`);
      }
      throw refusal('unknown-share', `not declared (no ShareMemory ${key} on this node)`);
    }
    if (foreign && !decl.allowedNamespaces.includes(podNamespace)) {
      // granted read-only (the only grant left)
      if (!ref.readOnly) {
        throw refusal(
          'read-only-grant',
          `belongs to namespace "${ref.namespace}", whose ShareMemory grants "${podNamespace}" read-only access (spec.readOnlyNamespaces); ${req.readOnlyHow ? req.readOnlyHow(key) : `bind it as "${key}:ro"`}`,
        );
      }
    }
    if (decl.sizeBytes < limits.minShareBytes || decl.sizeBytes > limits.maxShareBytes) {
      throw refusal(
        'size-limit',
        `declared size ${formatBytes(decl.sizeBytes)} is outside the allowed range ${formatBytes(limits.minShareBytes)} to ${formatBytes(limits.maxShareBytes)}`,
      );
    }
    if (!present) {
      const total = req.nodeBytesInUse + newBytes + decl.sizeBytes;
      if (total > limits.maxNodeBytes) {
        throw refusal(
          'node-limit',
          `needs ${formatBytes(decl.sizeBytes)} more on this node, which would bring all shares here to ${formatBytes(total)}, more than the ${formatBytes(limits.maxNodeBytes)} allowed`,
        );
      }
      newBytes += decl.sizeBytes;
    }
    out.push({ ref, declaration: decl });
  }
  return out;
}
