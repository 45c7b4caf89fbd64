// The CDI spec of one prepared ResourceClaim: what the core's ContainerInjection (the edits the
// annotation path gives a container through NRI) becomes for the kubelet's path, where the runtime
// applies CDI devices named in the CRI request.
//
// One spec file per claim, one CDI device per allocated device (`<claimUID>-<device>`: runtimes
// cache specs, so a name is never reused by another claim). The claim's edits are the spec's own
// containerEdits, which CDI applies once to a container that gets any of the spec's devices: a
// claim holds its shares as one holder, as a container does through its annotation, so a container
// of the claim gets all of them together, with one UB access hook and one MEMSHARE_UBS_SHARES that
// names them all (per-device edits would give two values of that variable, and the hook twice).
// A device's own edit is one variable naming the claim (CDI refuses a device with no edits).
// The injection's own CDI devices (the UB daemon-access group) are not nested here: the driver
// returns them beside the claim's device ids and the runtime resolves them from their own spec.
//
// cdiVersion 0.5.0, the lowest that carries all of it: mounts with a type need 0.4.0, device names
// starting with a digit (a claim uid does) 0.5.0; env, device nodes and createRuntime hooks are
// 0.3.0's. containerd 1.7.24 and 2.1.9 (Debian's builds, tags.cncf.io/container-device-interface)
// accept specs up to 0.8.0.
import type { ContainerInjection, DeviceSpec } from '../model';

export const CLAIM_CDI_VERSION = '0.5.0';
/** the CDI kind (vendor/class) of the claims' devices */
export const CLAIM_CDI_KIND = 'memshare.nri.io/claim';
/** the variable every device of a claim's spec sets: "<namespace>/<name>" of the claim */
export const CLAIM_ENV = 'MEMSHARE_DRA_CLAIM';

/** A claim uid as it may appear in a file and CDI device name (Kubernetes gives a UUID). */
const UID = /^[0-9a-zA-Z][0-9a-zA-Z-]{0,63}$/;

/** Why `uid` cannot name a spec file and CDI devices, or undefined. */
export function claimUidProblem(uid: string): string | undefined {
  return UID.test(uid) ? undefined : `claim uid ${JSON.stringify(uid.slice(0, 80))} is not a Kubernetes uid (letters, digits and "-", at most 64)`;
}

/** The file of a claim's spec in the CDI directory. */
export const claimSpecFile = (uid: string): string => `memshare.nri.io-claim_${uid}.json`;

/** The CDI device name of one allocated device of a claim. */
export const claimDeviceName = (uid: string, device: string): string => `${uid}-${device}`;

/** The fully qualified CDI id the runtime is given ("vendor/class=name"). */
export const claimCdiId = (uid: string, device: string): string => `${CLAIM_CDI_KIND}=${claimDeviceName(uid, device)}`;

export interface CdiMount {
  hostPath: string;
  containerPath: string;
  type: string;
  options: string[];
}

/** CDI's deviceNodes entry carries exactly the fields (and names) of the core's DeviceSpec. */
export type CdiDeviceNode = DeviceSpec;

export interface CdiHook {
  hookName: 'createRuntime';
  path: string;
  args: string[];
  env: string[];
  timeout?: number;
}

export interface CdiContainerEdits {
  env?: string[];
  mounts?: CdiMount[];
  deviceNodes?: CdiDeviceNode[];
  hooks?: CdiHook[];
}

export interface CdiSpec {
  cdiVersion: string;
  kind: string;
  devices: Array<{ name: string; containerEdits: CdiContainerEdits }>;
  containerEdits: CdiContainerEdits;
}

/** A claim as its spec names it. */
export interface ClaimOfSpec {
  namespace: string;
  name: string;
  uid: string;
}

/** The injection's edits in CDI's words, each list only when it has entries. */
export function cdiEditsOf(inj: ContainerInjection): CdiContainerEdits {
  const edits: CdiContainerEdits = {};
  if (inj.env.length) edits.env = inj.env.map((e) => `${e.key}=${e.value}`);
  if (inj.mounts.length) {
    edits.mounts = inj.mounts.map((m) => ({ hostPath: m.source, containerPath: m.destination, type: m.type, options: [...m.options] }));
  }
  if (inj.devices.length) {
    edits.deviceNodes = inj.devices.map((d) => ({ path: d.path, type: d.type, major: d.major, minor: d.minor, fileMode: d.fileMode, uid: d.uid, gid: d.gid }));
  }
  if (inj.createRuntimeHooks?.length) {
    edits.hooks = inj.createRuntimeHooks.map((h) => ({
      hookName: 'createRuntime' as const,
      path: h.path,
      args: [...h.args],
      env: [...h.env],
      ...(h.timeout !== undefined ? { timeout: h.timeout } : {}),
    }));
  }
  return edits;
}

/** The spec of a prepared claim: its devices (the allocated device names) and its injection. */
export function claimCdiSpec(claim: ClaimOfSpec, devices: readonly string[], inj: ContainerInjection): CdiSpec {
  const claimEnv = `${CLAIM_ENV}=${claim.namespace}/${claim.name}`;
  return {
    cdiVersion: CLAIM_CDI_VERSION,
    kind: CLAIM_CDI_KIND,
    devices: [...new Set(devices)].map((d) => ({ name: claimDeviceName(claim.uid, d), containerEdits: { env: [claimEnv] } })),
    containerEdits: cdiEditsOf(inj),
  };
}
