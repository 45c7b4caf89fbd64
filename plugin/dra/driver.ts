// The DRA driver: NodePrepareResources and NodeUnprepareResources as the memshare core's claims.
//
//   const driver = new MemshareDraDriver({
//     driverName: 'memshare.nri.io',      // the name the agent registers and publishes slices under
//     reader,                             // ClaimReader (plugin/dra/claims.ts over the API server)
//     service,                            // the MemshareService the NRI plugin uses too
//     declarations,                       // the DeclarationStore (device name -> share, deviceNameOf)
//     cdiDir: '/var/run/cdi',             // root's alone; one spec per prepared claim
//   });
//   // the gRPC layer (plugin/kubelet-plugin/) calls driver.prepare(claims) / driver.unprepare(claims)
//
// Prepare, per claim: read it (not allocated, or another uid: that claim's error), keep the
// allocation results of this driver, find each device's share (deviceNameOf of a declaration, or of
// a share the claim holds already), read-only from the claim's opaque config for this driver
// (ShareConfig below), prepare it in the core (authorization, acquisition, the durable record),
// write the claim's CDI spec (cdi-spec.ts), answer the devices with their CDI ids. Prepared again
// (the kubelet's retry, or after an agent restart) it gives the same ids and rewrites the spec.
// Unprepare, per claim: end its holdings in the core and remove its spec; a claim unknown here is
// done already (the kubelet retries until it hears success). Every claim gets an answer; nothing
// throws out of prepare() or unprepare(). Logs nothing: failures are the answers' error texts.
import { KeyedLock } from '../locks/keyed-lock';
import { isObject, messageOf, type ShareRef } from '../model';
import { removeCdiSpecFile, writeCdiSpecFile } from '../files/cdi-dir';
import type { DeclarationStore } from '../declarations/store';
import type { MemshareService } from '../memshare/service';
import { deviceNameOf } from './devices';
import { claimCdiId, claimCdiSpec, claimSpecFile, claimUidProblem } from './cdi-spec';
import type { AllocationResult, ClaimReader, ClaimRef, DraDriver, OpaqueConfig, PrepareResult, PreparedDevice, ResourceClaimView } from './types';

/** The opaque config's apiVersion and kind this driver reads (spec.devices.config[].opaque.parameters). */
export const SHARE_CONFIG_API_VERSION = 'memshare.nri.io/v1alpha1';
export const SHARE_CONFIG_KIND = 'ShareConfig';

/**
 * The parameters of this driver's opaque config:
 *   {apiVersion: "memshare.nri.io/v1alpha1", kind: "ShareConfig", readOnly: true}
 * readOnly (default false): the requests it applies to get their shares read-only. Any other
 * field, apiVersion or kind is refused, naming it.
 */
export interface ShareConfig {
  readOnly: boolean;
}

export interface DraDriverOptions {
  /** the driver name of the allocation results and configs that are this driver's */
  driverName: string;
  reader: ClaimReader;
  service: Pick<MemshareService, 'prepareClaim' | 'unprepareClaim' | 'claimHoldings'>;
  declarations: Pick<DeclarationStore, 'list'>;
  /** where the claims' CDI specs go (the runtime's CDI spec directory; must be root's alone) */
  cdiDir: string;
}

/** The claim as messages name it. */
const named = (c: { namespace: string; name: string; uid: string }): string => `ResourceClaim ${c.namespace}/${c.name} (uid ${c.uid})`;

export class MemshareDraDriver implements DraDriver {
  /** one call at a time per claim uid (a retry overlapping a slow prepare, an unprepare) */
  private readonly lock = new KeyedLock();

  constructor(private readonly o: DraDriverOptions) {}

  async prepare(claims: readonly ClaimRef[]): Promise<Map<string, PrepareResult>> {
    const out = new Map<string, PrepareResult>();
    await Promise.all(claims.map(async (c) => {
      try {
        out.set(c.uid, { devices: await this.lock.run(c.uid, () => this.prepareOne(c)) });
      } catch (err) {
        out.set(c.uid, { error: messageOf(err) });
      }
    }));
    return out;
  }

  async unprepare(claims: readonly ClaimRef[]): Promise<Map<string, string | undefined>> {
    const out = new Map<string, string | undefined>();
    await Promise.all(claims.map(async (c) => {
      try {
        await this.lock.run(c.uid, () => this.unprepareOne(c));
        out.set(c.uid, undefined);
      } catch (err) {
        out.set(c.uid, `cannot unprepare ${named(c)}: ${messageOf(err)}`);
      }
    }));
    return out;
  }

  private async prepareOne(ref: ClaimRef): Promise<PreparedDevice[]> {
    const bad = claimUidProblem(ref.uid);
    if (bad) throw new Error(`${named(ref)}: ${bad}`);
    const claim = await this.o.reader.read(ref);
    if (claim.uid !== ref.uid) throw new Error(`${named(ref)}: the claim of that name has uid ${claim.uid} now: it is another claim`);
    if (claim.results === undefined) throw new Error(`${named(ref)} is not allocated (yet); the kubelet prepares it once the scheduler has allocated it`);
    const ours = claim.results.filter((r) => r.driver === this.o.driverName);
    const readOnlyOf = requestReadOnly(claim, this.o.driverName);
    const shareOf = this.deviceIndex(ref.uid);
    const refs: ShareRef[] = [];
    for (const r of ours) {
      const share = shareOf.get(r.device);
      if (!share) {
        throw new Error(`${named(ref)}: allocated device ${JSON.stringify(r.device)} (pool ${JSON.stringify(r.pool)}) is no share declared on this node (no ShareMemory has that device name); the slice it was allocated from is stale`);
      }
      refs.push({ ...share, readOnly: readOnlyOf(r.request) });
    }
    const heldBefore = this.o.service.claimHoldings(ref.uid).length > 0;
    const inj = await this.o.service.prepareClaim({ namespace: ref.namespace, name: ref.name, uid: ref.uid }, refs, {
      readOnlyHow: `ask for it read-only: an opaque config for driver ${this.o.driverName} in the claim, parameters {apiVersion: "${SHARE_CONFIG_API_VERSION}", kind: "${SHARE_CONFIG_KIND}", readOnly: true}`,
    });
    if (ours.length === 0) {
      removeCdiSpecFile(this.o.cdiDir, claimSpecFile(ref.uid));
      return [];
    }
    try {
      writeCdiSpecFile(this.o.cdiDir, claimSpecFile(ref.uid), claimCdiSpec(ref, ours.map((r) => r.device), inj));
    } catch (err) {
      // a claim that gets no answer must not keep what this call made for it: the kubelet may
      // never unprepare a claim whose Prepare never succeeded
      if (!heldBefore) await this.o.service.unprepareClaim(ref.uid, 'its CDI spec could not be written').catch(() => undefined);
      throw new Error(`${named(ref)}: cannot write its CDI spec: ${messageOf(err)}`, { cause: err });
    }
    return preparedDevices(ref.uid, ours, inj.cdiDevices);
  }

  private async unprepareOne(ref: ClaimRef): Promise<void> {
    const bad = claimUidProblem(ref.uid);
    // no spec was ever written under such a uid, and the core holds nothing for it
    if (bad) return;
    await this.o.service.unprepareClaim(ref.uid, 'claim unprepared');
    removeCdiSpecFile(this.o.cdiDir, claimSpecFile(ref.uid));
  }

  /**
   * Device name -> share: every declaration of this node, and the shares the claim holds already
   * (a declaration removed since its prepare: the claim keeps it, so a retry still finds it).
   */
  private deviceIndex(uid: string): Map<string, { namespace: string; name: string }> {
    const m = new Map<string, { namespace: string; name: string }>();
    for (const h of this.o.service.claimHoldings(uid)) m.set(deviceNameOf(h.share.namespace, h.share.name), { namespace: h.share.namespace, name: h.share.name });
    for (const d of this.o.declarations.list()) m.set(deviceNameOf(d.namespace, d.name), { namespace: d.namespace, name: d.name });
    return m;
  }
}

/** One answer per allocated device: the requests it serves, its CDI id, and the injection's own CDI ids. */
function preparedDevices(uid: string, results: readonly AllocationResult[], extraCdiIds: readonly string[]): PreparedDevice[] {
  const byDevice = new Map<string, PreparedDevice>();
  for (const r of results) {
    const key = `${r.pool}\u0000${r.device}`;
    const have = byDevice.get(key);
    if (have) {
      if (!have.requestNames.includes(r.request)) have.requestNames.push(r.request);
      continue;
    }
    byDevice.set(key, { requestNames: [r.request], poolName: r.pool, deviceName: r.device, cdiDeviceIds: [claimCdiId(uid, r.device), ...extraCdiIds] });
  }
  return [...byDevice.values()];
}

/**
 * Whether a request's shares are read-only, from the claim's opaque configs for this driver, in
 * order (a later one that applies to the request overrides an earlier one, as the class's config
 * comes before the claim's). Throws naming the claim and the config entry for a malformed one.
 */
function requestReadOnly(claim: ResourceClaimView, driverName: string): (request: string) => boolean {
  const parsed: Array<{ requests: string[]; config: ShareConfig }> = [];
  claim.config.forEach((c: OpaqueConfig, i) => {
    if (c.driver !== driverName) return;
    const problem = shareConfigProblem(c.parameters);
    if (problem) throw new Error(`${named(claim)}: config[${i}] (opaque, driver ${driverName}): ${problem}`);
    parsed.push({ requests: c.requests, config: { readOnly: (c.parameters as { readOnly?: boolean }).readOnly === true } });
  });
  return (request) => {
    let readOnly = false;
    for (const p of parsed) if (p.requests.length === 0 || p.requests.includes(request)) readOnly = p.config.readOnly;
    return readOnly;
  };
}

/** Why `v` is not a ShareConfig, or undefined. */
export function shareConfigProblem(v: unknown): string | undefined {
  if (!isObject(v)) return `parameters must be an object {apiVersion: "${SHARE_CONFIG_API_VERSION}", kind: "${SHARE_CONFIG_KIND}", readOnly: true|false}`;
  for (const k of Object.keys(v)) {
    if (k !== 'apiVersion' && k !== 'kind' && k !== 'readOnly') return `unknown field ${JSON.stringify(k)} in the parameters (known: apiVersion, kind, readOnly)`;
  }
  if (v.apiVersion !== SHARE_CONFIG_API_VERSION) return `apiVersion ${v.apiVersion === undefined ? 'is missing' : `${JSON.stringify(v.apiVersion)} is unknown`} (this driver reads ${JSON.stringify(SHARE_CONFIG_API_VERSION)})`;
  if (v.kind !== SHARE_CONFIG_KIND) return `kind ${v.kind === undefined ? 'is missing' : `${JSON.stringify(v.kind)} is unknown`} (this driver reads ${JSON.stringify(SHARE_CONFIG_KIND)})`;
  if (v.readOnly !== undefined && typeof v.readOnly !== 'boolean') return `readOnly must be true or false, is ${JSON.stringify(v.readOnly)}`;
  return undefined;
}
