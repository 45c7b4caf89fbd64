// The DRAPlugin service (v1 and v1beta1: the same messages): the kubelet's requests checked and
// turned into DraDriver calls, the driver's answers turned into the kubelet's responses. Every claim
// asked about gets an entry, and a failure of the driver (an error, a missing answer, a throw) becomes
// that claim's error, which the kubelet retries; only a malformed request fails the whole call.
import type { ClaimRef, DraDriver, PrepareResult } from '../dra/types';
import type { Log } from '../log/log';
import * as pb from './dra.pb';
import { unaryMethod, type Grpc } from './grpc';

/** The DRAPlugin services this layer serves, by the names the registration advertises. */
export const DRA_SERVICES = ['v1.DRAPlugin', 'v1beta1.DRAPlugin'] as const;
export type DraService = (typeof DRA_SERVICES)[number];

/** The gRPC package of each advertised service name. */
export const DRA_PACKAGES: Record<DraService, keyof typeof pb.services> = {
  'v1.DRAPlugin': 'k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin',
  'v1beta1.DRAPlugin': 'k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin',
};

/** A request as it came off the wire: decoded, or why it could not be. */
type Incoming = { claims: unknown[] } | { undecodable: string };

interface WireDevice {
  requestNames: string[];
  poolName: string;
  deviceName: string;
  cdiDeviceIds: string[];
}
interface WirePrepared {
  devices: WireDevice[];
  error: string;
}
interface WirePrepareResponse {
  claims: Record<string, WirePrepared>;
}
interface WireUnprepareResponse {
  claims: Record<string, { error: string }>;
}

/** A request the kubelet could not have meant: answered with INVALID_ARGUMENT, naming the field. */
class MalformedRequest extends Error {}

function decoder(codec: { decode(b: Uint8Array): { claims?: unknown } }, message: string): (b: Buffer) => Incoming {
  return (b) => {
    try {
      const m = codec.decode(b);
      return { claims: Array.isArray(m.claims) ? (m.claims as unknown[]) : [] };
    } catch (err) {
      return { undecodable: `${message}: cannot decode ${b.length} bytes: ${(err as Error).message}` };
    }
  };
}

/** The claims of a request, each with its three required fields; one entry per uid. */
export function claimsOf(method: string, req: Incoming): ClaimRef[] {
  if ('undecodable' in req) throw new MalformedRequest(`${method}: ${req.undecodable}`);
  const byUid = new Map<string, ClaimRef & { index: number }>();
  req.claims.forEach((c, i) => {
    const claim = c as Partial<ClaimRef>;
    for (const field of ['namespace', 'uid', 'name'] as const) {
      const v = claim[field];
      if (typeof v !== 'string' || v === '') throw new MalformedRequest(`${method}: claims[${i}].${field} is empty (namespace, uid and name are required)`);
    }
    const ref: ClaimRef = { namespace: claim.namespace as string, uid: claim.uid as string, name: claim.name as string };
    const seen = byUid.get(ref.uid);
    if (seen && (seen.namespace !== ref.namespace || seen.name !== ref.name)) {
      throw new MalformedRequest(`${method}: claims[${i}].uid ${ref.uid} names ${ref.namespace}/${ref.name}, claims[${seen.index}] ${seen.namespace}/${seen.name}`);
    }
    if (!seen) byUid.set(ref.uid, { ...ref, index: i });
  });
  return [...byUid.values()].map(({ namespace, uid, name }) => ({ namespace, uid, name }));
}

const nameOf = (c: ClaimRef): string => `${c.namespace}/${c.name} (uid ${c.uid})`;

/** Prepare's answers on the wire: every claim an entry; an error is never empty (empty means success). */
export function prepareResponse(claims: readonly ClaimRef[], results: Map<string, PrepareResult>): WirePrepareResponse {
  const out: Record<string, WirePrepared> = Object.create(null) as Record<string, WirePrepared>;
  for (const c of claims) {
    const r = results.get(c.uid);
    if (r === undefined) out[c.uid] = { devices: [], error: `the driver gave no answer for claim ${nameOf(c)}` };
    else if ('error' in r) out[c.uid] = { devices: [], error: r.error || `preparing claim ${nameOf(c)} failed (the driver gave no reason)` };
    else {
      out[c.uid] = {
        devices: r.devices.map((d) => ({ requestNames: [...d.requestNames], poolName: d.poolName, deviceName: d.deviceName, cdiDeviceIds: [...d.cdiDeviceIds] })),
        error: '',
      };
    }
  }
  return { claims: out };
}

/** Unprepare's answers on the wire: every claim an entry, empty error meaning done. */
export function unprepareResponse(claims: readonly ClaimRef[], results: Map<string, string | undefined>): WireUnprepareResponse {
  const out: Record<string, { error: string }> = Object.create(null) as Record<string, { error: string }>;
  for (const c of claims) {
    if (!results.has(c.uid)) out[c.uid] = { error: `the driver gave no answer for claim ${nameOf(c)}` };
    else {
      const e = results.get(c.uid);
      out[c.uid] = { error: e === undefined ? '' : e || `unpreparing claim ${nameOf(c)} failed (the driver gave no reason)` };
    }
  }
  return { claims: out };
}

/** Runs one call at a time, in arrival order (the Go kubelet plugin helper serializes by default too). */
export class Serializer {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

export interface DraServiceOptions {
  driver: DraDriver;
  log?: Log;
  /** one Prepare or Unprepare at a time (default true) */
  serialize?: boolean;
}

/** The grpc-js service definition and handlers of one DRAPlugin version. */
export function draService(
  g: typeof Grpc,
  service: DraService,
  opts: DraServiceOptions,
  serializer: Serializer,
): { definition: Grpc.ServiceDefinition; handlers: Grpc.UntypedServiceImplementation } {
  const methods = pb.services[DRA_PACKAGES[service]];
  const { driver, log } = opts;
  const run = <T>(fn: () => Promise<T>): Promise<T> => (opts.serialize === false ? fn() : serializer.run(fn));

  const definition: Grpc.ServiceDefinition = {
    NodePrepareResources: unaryMethod(methods.NodePrepareResources, decoder(methods.NodePrepareResources.request, 'NodePrepareResourcesRequest')),
    NodeUnprepareResources: unaryMethod(methods.NodeUnprepareResources, decoder(methods.NodeUnprepareResources.request, 'NodeUnprepareResourcesRequest')),
  };

  /** One unary handler: claims checked, the driver called, its answers (or its failure) mapped. */
  function unary<R>(
    method: string,
    call: (claims: ClaimRef[]) => Promise<R>,
  ): Grpc.handleUnaryCall<Incoming, R> {
    return (req, callback) => {
      let claims: ClaimRef[];
      try {
        claims = claimsOf(method, req.request);
      } catch (err) {
        log?.warn({ service, method, err: (err as Error).message }, 'kubelet plugin: a malformed request refused');
        callback({ code: g.status.INVALID_ARGUMENT, details: (err as Error).message }, null);
        return;
      }
      call(claims).then(
        (res) => callback(null, res),
        // not reached: call() turns the driver's failures into per-claim errors; kept as a last guard
        (err: unknown) => callback({ code: g.status.INTERNAL, details: `${method}: ${(err as Error)?.message ?? String(err)}` }, null),
      );
    };
  }

  const handlers: Grpc.UntypedServiceImplementation = {
    NodePrepareResources: unary('NodePrepareResources', (claims) =>
      run(async () => {
        let results: Map<string, PrepareResult>;
        try {
          results = await driver.prepare(claims);
        } catch (err) {
          const reason = (err as Error)?.message ?? String(err);
          log?.error({ service, claims: claims.map(nameOf), err: reason }, 'kubelet plugin: the driver failed to prepare');
          results = new Map(claims.map((c) => [c.uid, { error: `preparing claim ${nameOf(c)} failed: ${reason}` }]));
        }
        const res = prepareResponse(claims, results);
        for (const [uid, r] of Object.entries(res.claims)) {
          if (r.error) log?.warn({ service, uid, err: r.error }, 'kubelet plugin: a claim not prepared');
        }
        log?.debug({ service, claims: claims.length }, 'kubelet plugin: NodePrepareResources answered');
        return res;
      }),
    ),
    NodeUnprepareResources: unary('NodeUnprepareResources', (claims) =>
      run(async () => {
        let results: Map<string, string | undefined>;
        try {
          results = await driver.unprepare(claims);
        } catch (err) {
          const reason = (err as Error)?.message ?? String(err);
          log?.error({ service, claims: claims.map(nameOf), err: reason }, 'kubelet plugin: the driver failed to unprepare');
          results = new Map(claims.map((c) => [c.uid, `unpreparing claim ${nameOf(c)} failed: ${reason}`]));
        }
        const res = unprepareResponse(claims, results);
        for (const [uid, r] of Object.entries(res.claims)) {
          if (r.error) log?.warn({ service, uid, err: r.error }, 'kubelet plugin: a claim not unprepared');
        }
        log?.debug({ service, claims: claims.length }, 'kubelet plugin: NodeUnprepareResources answered');
        return res;
      }),
    ),
  };
  return { definition, handlers };
}
