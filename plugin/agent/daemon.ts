// The daemon's lifecycle: config in, parts built and wired, NRI stub started; on SIGTERM the
// parts stop in reverse order of their start, from one list. Shares stay mounted across a stop:
// running containers still use them.
import { mkdirSync } from 'node:fs';
import { Ledger, type BindingRecord, type ClaimRecord } from '../ledger';
import { MemshareService } from '../memshare/service';
import { memshareHandlers } from '../nri-adapter/adapter';
import { Stub } from '../nri';
import { createBackend } from '../backends';
import type { ClusterWriters } from '../cluster';
import { ledgerSyncs, type Config } from './config';
import { createLogger, type Logger } from './logger';
import { packageVersion } from './build-info';
import { FailedEvictionsFile, readFailedEvictions } from './failed-evictions';
import { createMemshareMetrics } from './metrics';
import { collectFromParts, listenForMetrics } from './metrics-wiring';
import { Systemd } from './systemd';
import { NriConnection } from './nri-connection';
import { AgentStateWriter } from './agent-state-writer';
import { startDeclarationSources } from './declaration-sources';
import { startDraDoor, type DraDoor } from './dra-wiring';
import { messageOf } from '../model/errors';

export interface Daemon {
  readonly stub: Stub;
  readonly service: MemshareService;
  stop(): Promise<void>;
}

export interface DaemonOptions {
  /** where NOTIFY_SOCKET and WATCHDOG_USEC come from (default process.env) */
  env?: NodeJS.ProcessEnv;
}

/** A started part: what stops it. */
type Stop = () => unknown;

/** A binding's pod, container and share, as the log names them. */
function bindingFields(r: Readonly<BindingRecord>): { pod: string; container: string; containerId: string; share: string; readOnly: boolean } {
  return { pod: `${r.pod.namespace}/${r.pod.name}`, container: r.container.name, containerId: r.container.id, share: `${r.share.namespace}/${r.share.name}`, readOnly: r.readOnly };
}

function claimFields(r: Readonly<ClaimRecord>): { claim: string; claimUid: string; share: string; readOnly: boolean } {
  return { claim: `${r.claim.namespace}/${r.claim.name}`, claimUid: r.claim.uid, share: `${r.share.namespace}/${r.share.name}`, readOnly: r.readOnly };
}

export async function startDaemon(config: Config, log: Logger = createLogger({ level: config.log.level }), opts: DaemonOptions = {}): Promise<Daemon> {
  const env = opts.env ?? process.env;
  const stops: Stop[] = [];
  const systemd = new Systemd(env, log);
  stops.push(() => systemd.close());
  systemd.status(`starting: opening the ledger in ${config.stateDir}`);
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  // first: the ledger's lock keeps a second agent on this state directory from starting at all
  const { ledger, warnings } = await Ledger.open(config.stateDir, {
    sync: ledgerSyncs(config),
    onError: (err) => log.error({ err: err.message }, 'ledger: background compaction failed'),
  });
  stops.push(() => ledger.close());
  for (const w of warnings) log.warn({ stateDir: config.stateDir, problem: w }, 'ledger: damaged record skipped');
  const metrics = createMemshareMetrics();

  const sources = await startDeclarationSources(config, log);
  stops.push(() => sources.stop());
  const store = sources.store;

  // a backend that cannot be made (e.g. the UB SDK library missing) fails the start, naming why
  const backend = createBackend(config.backend, {
    stateDir: config.stateDir,
    warn: (msg, detail) => log.warn(detail ?? {}, msg),
    info: (msg, detail) => log.info(detail ?? {}, msg),
  }, { sharesDir: config.sharesDir });
  backend.start();
  stops.push(() => backend.close());

  // the cluster writers (status entries, refusal Events) only mark and queue here: their requests
  // run later, off the request path
  let cluster: ClusterWriters | undefined;
  const service = new MemshareService({
    backend,
    ledger,
    declarations: store,
    limits: config.limits,
    events: {
      // bindings and their ends at info, naming pod, container and share (logged once the NRI
      // reply is out, as below)
      bound: (r) => {
        cluster?.changed(r.share);
        setImmediate(() => log.info(bindingFields(r), 'bound'));
      },
      unbound: (r, why) => {
        cluster?.changed(r.share);
        setImmediate(() => log.info({ ...bindingFields(r), why }, 'unbound'));
      },
      // a ResourceClaim's holdings (the DRA door), logged as bindings are
      claimed: (r) => {
        cluster?.changed(r.share);
        setImmediate(() => log.info(claimFields(r), 'claimed'));
      },
      unclaimed: (r, why) => {
        cluster?.changed(r.share);
        setImmediate(() => log.info({ ...claimFields(r), why }, 'unclaimed'));
      },
      // these happen inside NRI handlers: count now, log once the reply is out (setImmediate),
      // so nothing above debug is written on the request path
      // the pod's Event gets the tenant's text; the log gets the operator's (they differ where the
      // tenant's is kept vague on purpose); the metric counts the real reason
      refused: (reason, message, subject, operatorDetail) => {
        metrics.refusals.labels(reason).inc();
        if (subject) setImmediate(() => cluster?.refused(subject.pod, message));
        const who = subject
          ? { pod: `${subject.pod.namespace}/${subject.pod.name}`, container: subject.container.name, containerId: subject.container.id, shares: subject.shares }
          : {};
        setImmediate(() => log.warn({ reason, ...who }, operatorDetail ?? message));
      },
      released: (ns, name, why) => {
        cluster?.changed({ namespace: ns, name });
        metrics.releases.inc();
        setImmediate(() => log.info({ share: `${ns}/${name}`, why }, 'share released'));
      },
      releaseFailed: (ns, name, message, retryAt) => {
        metrics.releaseFailures.inc();
        setImmediate(() =>
          log.error({ share: `${ns}/${name}`, retryAt: retryAt === undefined ? 'at the next start' : new Date(retryAt).toISOString() }, `release failed: ${message}`));
      },
      warn: (msg, detail) => log.warn(detail ?? {}, msg),
    },
  });
  await service.init();
  stops.push(() => service.close());
  if (config.kubernetes && sources.kubeCredentials && (config.kubernetes.status !== false || config.kubernetes.events !== false)) {
    const { resolveNodeName, startClusterWriters } = await import('../cluster');
    const nodeName = resolveNodeName(config.kubernetes.nodeName, env);
    const writers = startClusterWriters({
      credentials: sources.kubeCredentials,
      nodeName,
      status: config.kubernetes.status !== false,
      events: config.kubernetes.events !== false,
      backendKind: backend.kind,
      presentShares: () => service.presentShares(),
      bindings: (ns, name) => ledger.byShare(ns, name),
      claims: (ns, name) => ledger.allClaims().filter((c) => c.share.namespace === ns && c.share.name === name),
      usage: (h) => backend.usage(h),
      refusals: store, // the ShareMemory objects this node refuses get an entry saying why
      log,
    });
    cluster = writers;
    stops.push(() => writers.stop());
    // a ShareMemory (re)created in the API has no entry of ours yet, whatever we wrote before
    store.onChange((changes) => {
      for (const c of changes) if (c.kind === 'added') writers.objectCreated(c.declaration);
    });
    log.info({ node: nodeName, status: !!writers.status, events: !!writers.events }, 'kubernetes: writing this node\'s ShareMemory status and refusal Events');
  }

  let draDoor: DraDoor | undefined;
  // the DRA front door (config dra.enabled, which needs kubernetes): after the service is ready,
  // since the kubelet may prepare claims as soon as it is registered
  if (config.dra.enabled && config.kubernetes && sources.kubeCredentials) {
    const { resolveNodeName } = await import('../cluster');
    const door = await startDraDoor(config, {
      service,
      declarations: store,
      credentials: sources.kubeCredentials,
      nodeName: resolveNodeName(config.kubernetes.nodeName, env),
      backendKind: backend.kind,
      metrics,
      log,
    });
    if (door) stops.push(() => door.stop());
    draDoor = door;
  }

  collectFromParts(metrics, { ledger, service, backend, sources, cluster: () => cluster });

  // failed evictions: in the state directory for `status` (written off the request path, the
  // latest list only), and in the metrics
  const previous = readFailedEvictions(config.stateDir);
  for (const w of previous.warnings) log.warn({ stateDir: config.stateDir, problem: w }, 'failed evictions: damaged file');
  metrics.evictionsFailing.set(previous.failedEvictions.length);
  const failedEvictionsFile = new FailedEvictionsFile(config.stateDir, (err) =>
    log.error({ err: messageOf(err), stateDir: config.stateDir }, 'failed evictions: cannot record them for status'));

  // agent-state.json for `status`
  let metricsAddress: string | null = null;
  const runtime = () => stub.runtime;
  const nri: NriConnection = new NriConnection({ metrics, systemd, runtime, changed: () => agentState.changed() });
  const agentState = new AgentStateWriter({
    stateDir: config.stateDir,
    nriSocket: config.nri.socket,
    nri,
    runtime,
    declarationSources: () => sources.states(),
    pendingReleases: () => service.pendingReleases().length,
    failedEvictions: () => metrics.evictionsFailing.labels().value,
    metricsAddress: () => metricsAddress,
    dra: () => draDoor?.state() ?? null,
  }, log);
  // before the ledger closes: the counts read it
  stops.push(() => agentState.stop());
  sources.onChange(() => agentState.changed());

  const stub: Stub = new Stub(
    memshareHandlers({
      service,
      onReconciled: (r) => {
        log.info({ ended: r.ended, orphansReleased: r.orphansReleased, evicted: r.evict.map((e) => e.containerId), why: r.evict.map((e) => e.reason) }, 'reconciled with the runtime');
        for (const e of r.evict) log.warn({ pod: e.pod, container: e.container, containerId: e.containerId, shares: e.shares }, `evicting: ${e.reason}`);
      },
      // the reason is the service's, written for the user (e.g. a UB share came back with new memids)
      onStale: (containerId, reason, who) => log.warn({ ...who, containerId }, reason),
      onEvicted: (containerId, outcome, who) => {
        if (outcome === 'killed') metrics.evictions.inc();
        log.warn({ ...who, containerId, outcome }, 'evicted a container (it runs without its shares, or with stale ones: the reason is logged before)');
      },
      failedEvictions: previous.failedEvictions,
      onFailedEvictions: (failing) => {
        metrics.evictionsFailing.set(failing.length);
        failedEvictionsFile.record(failing);
      },
      onEvictionFailed: (f, who) => {
        metrics.evictionFailures.inc();
        const detail = { ...who, containerId: f.containerId, pid: f.pid, errno: f.errno, err: f.lastError, attempts: f.attempts, since: f.since };
        // logged once the NRI reply is out: an eviction at reconcile or start runs in a handler
        setImmediate(() => {
          if (f.final) log.error(detail, 'eviction failed for good; the container runs without its shares until it ends or the agent reconciles again');
          else log.error({ ...detail, retryInMs: f.retryInMs }, 'eviction failed; retrying');
        });
      },
      onError: (what, err) => log.error({ err: messageOf(err) }, `failed ${what}`),
    }),
    {
      name: config.nri.name,
      index: config.nri.index,
      socketPath: config.nri.socket,
      logger: log,
      env,
      observer: nri.observer(),
    },
  );
  void stub.start();
  stops.push(() => stub.stop());

  const metricsServer = await listenForMetrics(config.metrics.address, metrics, () => ({ ok: nri.state === 'synchronized', detail: nri.state }), log);
  if (metricsServer) {
    metricsAddress = metricsServer.address;
    stops.push(() => metricsServer.close());
  }
  agentState.start();
  systemd.startWatchdog();
  if (systemd.starting) systemd.status(`connecting to containerd at ${config.nri.socket}`);
  log.info({ socket: config.nri.socket, plugin: config.nri.name, index: config.nri.index, backend: backend.kind, version: packageVersion() }, 'nri-memshare started');

  return {
    stub,
    service,
    async stop() {
      systemd.stopping();
      for (const stop of [...stops].reverse()) await stop();
    },
  };
}
