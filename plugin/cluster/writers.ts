// The two cluster writers as the daemon uses them: built from the config, fed by the service's
// events, reading the node's state from the service, the ledger and the backend.
import type { KubeCredentials } from '../kube/kubeconfig';
import { kubeRequest } from '../kube/request';
import { shareKey, type ShareHandle } from '../model';
import type { BindingRecord } from '../ledger';
import type { DeclarationStore } from '../declarations/store';
import type { KubeSend, NodeShareStatus, ShareRef } from './apply';
import { RefusalEvents, type EventPod } from './events';
import { StatusWriter, type StatusWriterLog } from './status-writer';

export interface ClusterWritersOptions {
  credentials: KubeCredentials;
  nodeName: string;
  status: boolean;
  events: boolean;
  backendKind: string;
  presentShares(): ShareHandle[];
  bindings(namespace: string, name: string): ReadonlyArray<Readonly<BindingRecord>>;
  /** the ResourceClaims holding the share (the DRA door): holders like containers */
  claims?(namespace: string, name: string): ReadonlyArray<{ readonly createdAt: number }>;
  usage(handle: ShareHandle): Promise<{ usedBytes: number | null } | undefined>;
  /** the ShareMemory objects this node refuses (its own limits): each gets an entry saying why */
  refusals?: Pick<DeclarationStore, 'refused' | 'refusals' | 'onRefusalChange'>;
  log: StatusWriterLog;
  /** tests: another transport than kubeRequest */
  send?: KubeSend;
  statusOptions?: { minIntervalMs?: number; ratePerSecond?: number; burst?: number; resyncMs?: number; backoff?: { initialMs: number; maxMs: number } };
}

export interface ClusterWriters {
  readonly status: StatusWriter | undefined;
  readonly events: RefusalEvents | undefined;
  changed(share: ShareRef): void;
  objectCreated(share: ShareRef): void;
  refused(pod: EventPod, message: string): void;
  stop(): Promise<void>;
}

export function startClusterWriters(o: ClusterWritersOptions): ClusterWriters {
  const send: KubeSend = o.send ?? ((r) => kubeRequest(o.credentials, r));
  const firstSeen = new Map<string, string>();
  const snapshot = async (share: ShareRef): Promise<NodeShareStatus | undefined> => {
    const key = shareKey(share.namespace, share.name);
    const handle = o.presentShares().find((h) => h.namespace === share.namespace && h.name === share.name);
    if (!handle) {
      firstSeen.delete(key);
      return undefined;
    }
    const bound = [...o.bindings(share.namespace, share.name).filter((r) => r.state === 'bound'), ...(o.claims?.(share.namespace, share.name) ?? [])];
    if (!firstSeen.has(key)) firstSeen.set(key, rfc3339(Date.now()));
    const oldest = bound.reduce((m, r) => Math.min(m, r.createdAt), Infinity);
    const usage = await o.usage(handle).catch(() => undefined);
    return {
      holders: bound.length,
      bytesUsed: usage?.usedBytes ?? null,
      sizeInForce: handle.sizeBytes,
      since: oldest < Infinity ? rfc3339(oldest) : firstSeen.get(key)!,
      backend: o.backendKind,
    };
  };
  const status = o.status
    ? new StatusWriter({
      nodeName: o.nodeName,
      send,
      snapshot,
      held: () => o.presentShares().map((h) => ({ namespace: h.namespace, name: h.name })),
      ...(o.refusals ? refusalView(o.refusals) : {}),
      log: o.log,
      ...o.statusOptions,
    }).start()
    : undefined;
  // a refusal that appears may be of an object created again: whatever was written before is gone
  const unsubscribe = status && o.refusals?.onRefusalChange((share, kind) => {
    if (kind === 'added') status.objectCreated(share);
    status.changed(share);
  });
  const events = o.events ? new RefusalEvents({ nodeName: o.nodeName, send, log: o.log }) : undefined;
  return {
    status,
    events,
    changed: (share) => status?.changed(share),
    objectCreated: (share) => status?.objectCreated(share),
    refused: (pod, message) => events?.refused(pod, message),
    async stop() {
      unsubscribe?.();
      await status?.stop();
      await events?.stop();
    },
  };
}

function refusalView(r: NonNullable<ClusterWritersOptions['refusals']>): Pick<ConstructorParameters<typeof StatusWriter>[0], 'refusal' | 'refused'> {
  return {
    refusal: (share) => {
      const x = r.refused(share.namespace, share.name);
      return x && { reason: x.reason, ...(x.generation === undefined ? {} : { observedGeneration: x.generation }) };
    },
    refused: () => r.refusals().map((x) => ({ namespace: x.namespace, name: x.name })),
  };
}

/** RFC 3339 to the second, as Kubernetes writes times. */
function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}
