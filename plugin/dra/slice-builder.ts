// What a node publishes for the scheduler: its declared shares as the devices of ResourceSlices
// (resource.k8s.io/v1, Kubernetes 1.34+; v1beta1's shape for 1.32/1.33). Pure: declarations,
// limits and the pool's shape in, slice objects out; plugin/dra/slices.ts writes them.
//
// One device per declared share this node would accept (within limits.minShareBytes..maxShareBytes
// and maxNodeBytes, its name at most limits.maxNameLength), named deviceNameOf(ns, name), with:
//  - attributes shareNamespace, share, backend (strings; CEL: device.attributes["memshare.nri.io"].share;
//    not "namespace": a reserved word in CEL, so `.namespace` would not parse in a selector)
//  - capacity `memory`: the share's declared size in bytes. A claim does not consume it (every
//    claim sees the whole share): requestPolicy default 0 and validRange 0..0, so a claim that
//    asks for capacity cannot be allocated; select a size with CEL on device.capacity instead.
//  - allowMultipleAllocations: true, so many claims (a ResourceClaimTemplate's, one per pod) can
//    be allocated the same share (DRAConsumableCapacity: alpha 1.34, beta 1.36). One claim shared
//    by many pods needs nothing of this: its pods share its one allocation.
//  - with nodeLimit 'counters' (pool per node only): consumesCounters {node-memory: {memory: size}}
//    against a counter set of limits.maxNodeBytes published in a slice of its own (1.36's shape:
//    a slice carries devices or sharedCounters, not both; 64 devices per slice when they consume
//    counters). What the scheduler makes of that is in docs/dra.md: a device that allows multiple
//    allocations counts against the set once when allocated, and only allocators with the upstream
//    fix count already allocated shared devices at all; the agent's own check at Prepare stays.
// (node:crypto is loaded at first use, as in devices.ts: an NRI-only agent never needs it.)
// Pools:
//  - 'node' (the local backend): pool name = node name, every slice spec.nodeName = this node.
//  - 'spanning' (the UB backend): one pool for the UB nodes, spec.nodeSelector (one term, e.g.
//    a label on the UB nodes), no counters (no single node's limit applies to a pool); every UB
//    node's agent computes the same slices from the same declarations and applies them under one
//    shared field manager, so the writes agree (slices.ts writes only when the content differs).
import type * as Crypto from 'node:crypto';
import type { Limits, ShareDeclaration } from '../model';
import { isDnsLabel } from '../model';
import { deviceNameOf } from './devices';

export const DEVICES_PER_SLICE = 128;
/** the API's limit when any device of the slice consumes counters (or has taints) */
export const DEVICES_PER_SLICE_WITH_COUNTERS = 64;
export const COUNTER_SET = 'node-memory';
export const CAPACITY_NAME = 'memory';

/** core/v1 NodeSelector, as the slice carries it */
export interface NodeSelector {
  nodeSelectorTerms: Array<{
    matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
    matchFields?: Array<{ key: string; operator: string; values?: string[] }>;
  }>;
}

export type PoolTopology =
  | { kind: 'node' }
  | { kind: 'spanning'; poolName: string; nodeSelector: NodeSelector };

export interface SliceBuildInput {
  driverName: string;
  nodeName: string;
  /** the backend kind, published as an attribute ("local", "ubs") */
  backend: string;
  declarations: readonly ShareDeclaration[];
  limits: Limits;
  topology: PoolTopology;
  /** 'counters': the node's limit as shared counters (pool per node only); 'none': not published */
  nodeLimit: 'counters' | 'none';
}

export interface DeviceAttributeValue {
  string?: string;
  int?: number;
  bool?: boolean;
  version?: string;
}

export interface SliceDevice {
  name: string;
  attributes: Record<string, DeviceAttributeValue>;
  capacity: Record<string, { value: string; requestPolicy?: { default: string; validRange: { min: string; max: string } } }>;
  allowMultipleAllocations?: boolean;
  consumesCounters?: Array<{ counterSet: string; counters: Record<string, { value: string }> }>;
}

export interface SliceSpec {
  driver: string;
  pool: { name: string; generation: number; resourceSliceCount: number };
  nodeName?: string;
  nodeSelector?: NodeSelector;
  devices?: SliceDevice[];
  sharedCounters?: Array<{ name: string; counters: Record<string, { value: string }> }>;
}

export interface SliceObject {
  name: string;
  spec: SliceSpec;
}

/** A declaration this node does not publish, and why (the same reasons it would refuse a binding). */
export interface LeftOut {
  namespace: string;
  name: string;
  reason: string;
}

export interface BuiltSlices {
  poolName: string;
  /** ordered; the generation is 0 here, set by the writer */
  slices: SliceObject[];
  leftOut: LeftOut[];
}

/** Object names are DNS subdomains of at most 253 characters: a long prefix keeps its start and gets a hash. */
export function slicePrefix(driverName: string, poolKey: string): string {
  const base = `${driverName.replace(/\./g, '-')}-${poolKey.replace(/[^a-z0-9.-]/g, '-')}`;
  if (base.length <= 200) return base;
  const hash = (require('node:crypto') as typeof Crypto).createHash('sha256').update(base).digest('hex').slice(0, 16);
  return `${base.slice(0, 183)}-${hash}`;
}

export function buildSlices(input: SliceBuildInput): BuiltSlices {
  const { limits, topology } = input;
  const leftOut: LeftOut[] = [];
  const shares = [...input.declarations]
    .filter((d) => {
      const reason =
        !isDnsLabel(d.name, limits.maxNameLength) ? `its name is longer than ${limits.maxNameLength} characters (limits.maxNameLength)`
        : d.sizeBytes < limits.minShareBytes ? `its size ${d.sizeBytes} is below limits.minShareBytes ${limits.minShareBytes}`
        : d.sizeBytes > limits.maxShareBytes ? `its size ${d.sizeBytes} is above limits.maxShareBytes ${limits.maxShareBytes}`
        : d.sizeBytes > limits.maxNodeBytes ? `its size ${d.sizeBytes} is above limits.maxNodeBytes ${limits.maxNodeBytes}`
        : undefined;
      if (reason) leftOut.push({ namespace: d.namespace, name: d.name, reason });
      return reason === undefined;
    })
    .sort((a, b) => (a.namespace === b.namespace ? cmp(a.name, b.name) : cmp(a.namespace, b.namespace)));
  const counters = input.nodeLimit === 'counters' && topology.kind === 'node';
  const devices = shares.map((d) => deviceOf(d, input.backend, counters));

  const poolName = topology.kind === 'node' ? input.nodeName : topology.poolName;
  const prefix = slicePrefix(input.driverName, topology.kind === 'node' ? input.nodeName : topology.poolName);
  const where: Pick<SliceSpec, 'nodeName' | 'nodeSelector'> = topology.kind === 'node' ? { nodeName: input.nodeName } : { nodeSelector: topology.nodeSelector };
  const specs: Array<Pick<SliceSpec, 'devices' | 'sharedCounters'>> = [];
  if (counters) specs.push({ sharedCounters: [{ name: COUNTER_SET, counters: { [CAPACITY_NAME]: { value: String(limits.maxNodeBytes) } } }] });
  const perSlice = counters ? DEVICES_PER_SLICE_WITH_COUNTERS : DEVICES_PER_SLICE;
  for (let i = 0; i < devices.length; i += perSlice) specs.push({ devices: devices.slice(i, i + perSlice) });
  const slices = specs.map((s, i) => ({
    name: `${prefix}-${i}`,
    spec: { driver: input.driverName, pool: { name: poolName, generation: 0, resourceSliceCount: specs.length }, ...where, ...s },
  }));
  return { poolName, slices, leftOut };
}

function deviceOf(d: ShareDeclaration, backend: string, counters: boolean): SliceDevice {
  const size = String(d.sizeBytes);
  const device: SliceDevice = {
    name: deviceNameOf(d.namespace, d.name),
    attributes: { shareNamespace: { string: d.namespace }, share: { string: d.name }, backend: { string: backend } },
    capacity: { [CAPACITY_NAME]: { value: size, requestPolicy: { default: '0', validRange: { min: '0', max: '0' } } } },
    allowMultipleAllocations: true,
  };
  if (counters) device.consumesCounters = [{ counterSet: COUNTER_SET, counters: { [CAPACITY_NAME]: { value: size } } }];
  return device;
}

/**
 * The same slice in resource.k8s.io/v1beta1 (Kubernetes 1.32, 1.33): a device's fields under
 * `basic`, and none of what those versions lack (consumable capacity; counters were alpha), so a
 * share there is allocated to one claim at a time (a claim shared by many pods still works).
 */
export function toV1beta1(spec: SliceSpec): Record<string, unknown> {
  const { devices, sharedCounters: _dropped, ...rest } = spec;
  const out: Record<string, unknown> = { ...rest };
  if (devices) {
    out.devices = devices.map((d) => ({
      name: d.name,
      basic: { attributes: d.attributes, capacity: Object.fromEntries(Object.entries(d.capacity).map(([k, v]) => [k, { value: v.value }])) },
    }));
  }
  return out;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
