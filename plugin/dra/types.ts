// The seams of the DRA front door (a kubelet plugin beside the NRI plugin, one core behind both).
// The gRPC layer (plugin/kubelet-plugin/) knows only DraDriver; the driver (plugin/dra/driver.ts)
// knows only ClaimReader for the API server, so each side is tested without the other.

/** A claim as the kubelet names it in NodePrepareResources and NodeUnprepareResources. */
export interface ClaimRef {
  namespace: string;
  uid: string;
  name: string;
}

/** One device prepared for a claim, as the kubelet passes it on (the CDI ids go to the runtime). */
export interface PreparedDevice {
  requestNames: string[];
  poolName: string;
  deviceName: string;
  /** fully qualified CDI device names, "vendor.io/class=name" */
  cdiDeviceIds: string[];
}

/** Prepare's answer for one claim: its devices, or why not (the kubelet retries). */
export type PrepareResult = { devices: PreparedDevice[] } | { error: string };

/** What the gRPC layer calls. Both calls are idempotent and answer every claim asked about. */
export interface DraDriver {
  /** keyed by claim uid */
  prepare(claims: readonly ClaimRef[]): Promise<Map<string, PrepareResult>>;
  /** keyed by claim uid; undefined when unprepared (or never prepared here), else the error */
  unprepare(claims: readonly ClaimRef[]): Promise<Map<string, string | undefined>>;
}

/** One allocation result of a ResourceClaim (resource.k8s.io/v1 status.allocation.devices.results[]). */
export interface AllocationResult {
  request: string;
  driver: string;
  pool: string;
  device: string;
  shareID?: string;
  consumedCapacity?: Record<string, string>;
}

/** One opaque config entry of a claim (spec.devices.config[] and status.allocation.devices.config[]). */
export interface OpaqueConfig {
  /** requests it applies to; empty: all */
  requests: string[];
  driver: string;
  parameters: unknown;
}

/** The parts of a ResourceClaim the driver reads. */
export interface ResourceClaimView {
  namespace: string;
  name: string;
  uid: string;
  /** undefined: not allocated (yet) */
  results: AllocationResult[] | undefined;
  config: OpaqueConfig[];
}

/** Reads a claim from the API server; rejects with an Error naming the claim and the reason. */
export interface ClaimReader {
  read(ref: ClaimRef): Promise<ResourceClaimView>;
}
