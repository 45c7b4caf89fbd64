// The daemon's lifecycle: config in, parts built and wired, NRI stub started; on SIGTERM the
// parts stop in reverse. Shares stay mounted across a stop: running containers still use them.
import { mkdirSync } from 'node:fs';
// plugin/declarations/index.ts would load the Kubernetes client (http, https, tls) on every node:
// the files' parts come from their own modules, the Kubernetes parts only when configured
import { DeclarationsDirectory } from '../declarations/directory';
import { MergedDeclarationStore } from '../declarations/store';
import type { KubeCredentials } from '../kube/kubeconfig';
import type { KubernetesDeclarationSource } from '../declarations/kubernetes';
import { Ledger } from '../ledger';
import { MemshareService } from '../memshare/service';
import { memshareHandlers } from '../nri-adapter/adapter';
import { readFailedEvictions, writeFailedEvictions, type FailedEviction } from './failed-evictions';
import { Stub, type StubState } from '../nri';
import { createBackend } from '../backends';
import { ledgerSyncs, type Config } from './config';
import { createLogger, type Logger } from './logger';
import { packageVersion } from './build-info';
import { notifierFromEnv, watchdogIntervalMs } from './notify';
import { inferNriVersion, processStartTicks, writeAgentState, type AgentState, type DeclarationSourceState } from './agent-state';
import { createMemshareMetrics, startMetricsServer, type MetricsServer, type NriEventName } from './metrics';
import type { ClusterWriters } from '../cluster';

export interface Daemon {
  readonly stub: Stub;
  readonly service: MemshareService;
  stop(): Promise<void>;
}

export interface DaemonOptions {
  /** where NOTIFY_SOCKET and WATCHDOG_USEC come from (default process.env) */
  env?: NodeJS.ProcessEnv;
}

export async function startDaemon(config: Config, log: Logger = createLogger({ level: config.log.level }), opts: DaemonOptions = {}): Promise<Daemon> {
  const env = opts.env ?? process.env;
  // systemd (Type=notify): READY=1 once serving containerd, STATUS= lines, the watchdog
  let notifyFailedAt = 0;
  const notifier = notifierFromEnv(env, (err) => {
    // a lost notify socket must not flood the log: once a minute at most
    if (Date.now() - notifyFailedAt < 60_000) return;
    notifyFailedAt = Date.now();
    log.warn({ err: err.message }, 'systemd: cannot notify');
  });
  let lastStatus = '';
  let stopping = false;
  const status = (text: string, extra: Record<string, string> = {}) => {
    // after STOPPING=1 the stub's own teardown (disconnected, stopped) is no news
    if (!notifier || stopping || (text === lastStatus && Object.keys(extra).length === 0)) return;
    lastStatus = text;
    notifier.send({ ...extra, STATUS: text });
  };
  status(`starting: opening the ledger in ${config.stateDir}`);
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  // first: the ledger's lock keeps a second agent on this state directory from starting at all
  const { ledger, warnings } = await Ledger.open(config.stateDir, {
    sync: ledgerSyncs(config),
    onError: (err) => log.error({ err: err.message }, 'ledger: background compaction failed'),
  });
  for (const w of warnings) log.warn({ stateDir: config.stateDir, problem: w }, 'ledger: damaged record skipped');
  const metrics = createMemshareMetrics();

  const declarations = new DeclarationsDirectory(config.declarationsDir, {
    limits: config.limits,
    onListenerError: (err) => log.error({ err: String(err) }, 'declarations: listener failed'),
  });
  declarations.onProblem((p) => log.warn({ source: p.source, problem: p.message }, 'declarations: problem'));
  declarations.start();
  const store = new MergedDeclarationStore([declarations]);
  let kube: KubernetesDeclarationSource | undefined;
  let kubeWhere = '';
  let kubeTlsVerify: boolean | undefined;
  let kubeCredentials: KubeCredentials | undefined;
  if (config.kubernetes) {
    // unusable credentials throw (naming the kubeconfig field): the start fails with that message
    const { loadKubeCredentials } = await import('../kube/kubeconfig');
    const { KubernetesDeclarationSource } = await import('../declarations/kubernetes');
    const credentials = loadKubeCredentials(config.kubernetes);
    kubeCredentials = credentials;
    kubeWhere = `${credentials.description} (${credentials.server.origin})`;
    kube = new KubernetesDeclarationSource({
      credentials,
      limits: config.limits,
      log,
      onListenerError: (err) => log.error({ err: String(err) }, 'declarations: listener failed'),
    });
    // the source knows how the server is reached (verified TLS, unverified TLS, plain http)
    kubeTlsVerify = kube.security.tlsVerified;
    store.addSource(kube); // after the directory: a file declaration wins a clash (reported)
    kube.start();
    // wait a bounded time for the first list, so containers created right after a restart find
    // their shares; an unreachable API server does not keep the agent from starting
    const listed = await Promise.race([
      kube.ready().then(() => true, () => false),
      new Promise<boolean>((r) => setTimeout(r, 10_000, false).unref()),
    ]);
    if (!listed) log.warn({ problems: kube.errors().map((p) => p.message) }, 'kubernetes: no ShareMemory list yet; starting without it and watching on');
  }
  store.onChange((changes) => {
    for (const c of changes) log.info({ change: c.kind, share: `${c.declaration.namespace}/${c.declaration.name}` }, 'declarations: changed');
  });

  // a backend that cannot be made (e.g. the UB SDK library missing) fails the start, naming why
  const backend = createBackend(config.backend, {
    sharesDir: config.sharesDir,
    stateDir: config.stateDir,
    warn: (msg, detail) => log.warn(detail ?? {}, msg),
    info: (msg, detail) => log.info(detail ?? {}, msg),
  });
  backend.start?.();

  // the cluster writers (status entries, refusal Events) only mark and queue here: their requests
  // run later, off the request path
  let cluster: ClusterWriters | undefined;
  const service = new MemshareService({
    backend,
    ledger,
    declarations: store,
    limits: config.limits,
    events: {
      bound: (r) => {
        cluster?.changed(r.share);
        log.debug({ share: `${r.share.namespace}/${r.share.name}`, container: r.container.id }, 'bound');
      },
      unbound: (r) => cluster?.changed(r.share),
      // these happen inside NRI handlers: count now, log once the reply is out (setImmediate),
      // so nothing above debug is written on the request path
      // the pod's Event gets the tenant's text; the log gets the operator's (they differ where the
      // tenant's is kept vague on purpose); the metric counts the real reason
      refused: (reason, message, subject, operatorDetail) => {
        metrics.refusals.labels(reason).inc();
        if (subject) setImmediate(() => cluster?.refused(subject.pod, message));
        setImmediate(() => log.warn({ reason }, operatorDetail ?? message));
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
  if (config.kubernetes && kubeCredentials && (config.kubernetes.status !== false || config.kubernetes.events !== false)) {
    const { resolveNodeName, startClusterWriters } = await import('../cluster');
    const nodeName = resolveNodeName(config.kubernetes.nodeName, env);
    cluster = startClusterWriters({
      credentials: kubeCredentials,
      nodeName,
      status: config.kubernetes.status !== false,
      events: config.kubernetes.events !== false,
      backendKind: backend.kind,
      presentShares: () => service.presentShares(),
      bindings: (ns, name) => ledger.byShare(ns, name),
      usage: (h) => backend.usage(h),
      log,
    });
    // a ShareMemory (re)created in the API has no entry of ours yet, whatever we wrote before
    store.onChange((changes) => {
      for (const c of changes) if (c.kind === 'added') cluster?.objectCreated(c.declaration);
    });
    log.info({ node: nodeName, status: !!cluster.status, events: !!cluster.events }, 'kubernetes: writing this node\'s ShareMemory status and refusal Events');
  }

  metrics.registry.onCollect(async () => {
    metrics.bindings.set(ledger.all().filter((r) => r.state === 'bound').length);
    metrics.shareSizeBytes.reset();
    metrics.shareUsedBytes.reset();
    for (const s of service.presentShares()) {
      const u = await backend.usage(s);
      if (!u) continue;
      metrics.shareSizeBytes.labels(s.namespace, s.name).set(u.sizeBytes);
      if (u.usedBytes !== null) metrics.shareUsedBytes.labels(s.namespace, s.name).set(u.usedBytes);
    }
    metrics.releasesPending.set(service.pendingReleases().length);
  });

  // failed evictions: in the state directory for `status` (written off the request path, the
  // latest list only), and in the metrics
  const previous = readFailedEvictions(config.stateDir);
  for (const w of previous.warnings) log.warn({ stateDir: config.stateDir, problem: w }, 'failed evictions: damaged file');
  metrics.evictionsFailing.set(previous.failedEvictions.length);
  let failingToWrite: FailedEviction[] | undefined;
  const recordFailedEvictions = (failing: FailedEviction[]) => {
    metrics.evictionsFailing.set(failing.length);
    const pending = failingToWrite !== undefined;
    failingToWrite = failing;
    if (pending) return;
    setImmediate(() => {
      const list = failingToWrite ?? [];
      failingToWrite = undefined;
      try {
        writeFailedEvictions(config.stateDir, list);
      } catch (err) {
        log.error({ err: (err as Error).message, stateDir: config.stateDir }, 'failed evictions: cannot record them for status');
      }
    });
  };

  let state: StubState = 'connecting';
  let everSynced = false;
  let readySent = false;
  let registeredSince: Date | undefined;
  let lastNriError: string | null = null;

  // agent-state.json for `status`: rewritten on changes (coalesced, off the request path) and
  // every 5 s, so the Kubernetes watch's state and the counts stay current
  const startedAt = new Date().toISOString();
  const pidStartTicks = processStartTicks('self') ?? '';
  let metricsAddress: string | null = null;
  let stateWritePending = false;
  let stateWriteFailedAt = 0;
  const agentState = (lifecycle: AgentState['lifecycle']): AgentState => {
    const rt = stub.runtime;
    const reported = rt?.nriVersion ? rt.nriVersion : null;
    const inferred = rt && !reported ? inferNriVersion(rt.runtimeName, rt.runtimeVersion) : null;
    const sources: DeclarationSourceState[] = [];
    const dirProblems = declarations.errors().map((p) => p.message);
    sources.push({ kind: 'directory', location: config.declarationsDir, state: dirProblems.length ? 'problems' : 'ok', declarations: declarations.list().length, problems: dirProblems });
    if (kube) {
      const problems = kube.errors().map((p) => p.message);
      sources.push({
        kind: 'kubernetes', location: kubeWhere, state: kube.connected ? 'connected' : problems.length ? 'failing' : 'connecting',
        declarations: kube.list().length, problems, ...(kubeTlsVerify === undefined ? {} : { tlsVerify: kubeTlsVerify }),
      });
    }
    return {
      version: 1, pid: process.pid, pidStartTicks, agentVersion: packageVersion(), startedAt, updatedAt: new Date().toISOString(), lifecycle,
      nri: {
        socket: config.nri.socket, state, registeredSince: registeredSince?.toISOString() ?? null,
        runtime: rt ? { name: rt.runtimeName, version: rt.runtimeVersion, nriVersion: reported ?? inferred, nriVersionSource: reported ? 'reported' : inferred ? 'inferred' : null } : null,
        lastError: state === 'synchronized' ? null : lastNriError,
      },
      declarations: sources,
      pendingReleases: service.pendingReleases().length,
      failedEvictions: metrics.evictionsFailing.labels().value,
      metricsAddress,
    };
  };
  const writeState = (lifecycle: AgentState['lifecycle'] = 'running') => {
    try {
      writeAgentState(config.stateDir, agentState(lifecycle));
    } catch (err) {
      if (Date.now() - stateWriteFailedAt < 60_000) return;
      stateWriteFailedAt = Date.now();
      log.error({ err: (err as Error).message, stateDir: config.stateDir }, 'agent state: cannot record it for status');
    }
  };
  const stateChanged = () => {
    if (stateWritePending) return;
    stateWritePending = true;
    setImmediate(() => {
      stateWritePending = false;
      if (!stopping) writeState();
    });
  };
  declarations.onProblem(stateChanged);
  store.onChange(stateChanged);
  const stub: Stub = new Stub(
    memshareHandlers({
      service,
      stub: () => stub,
      onReconciled: (r) =>
        log.info({ ended: r.ended, orphansReleased: r.orphansReleased, evicted: r.evict.map((e) => e.containerId), why: r.evict.map((e) => e.reason) }, 'reconciled with the runtime'),
      // the reason is the service's, written for the user (e.g. a UB share came back with new memids)
      onStale: (containerId, reason) => log.warn({ container: containerId }, reason),
      onEvicted: (containerId, outcome) =>
        log.warn({ container: containerId, outcome }, 'evicted a container (it runs without its shares, or with stale ones: the reason is logged before)'),
      failedEvictions: previous.failedEvictions,
      onFailedEvictions: recordFailedEvictions,
      onEvictionFailed: (f) => {
        metrics.evictionFailures.inc();
        const detail = { container: f.containerId, pid: f.pid, errno: f.errno, err: f.lastError, attempts: f.attempts, since: f.since };
        // logged once the NRI reply is out: an eviction at reconcile or start runs in a handler
        setImmediate(() => {
          if (f.final) log.error(detail, 'eviction failed for good; the container runs without its shares until it ends or the agent reconciles again');
          else log.error({ ...detail, retryInMs: f.retryInMs }, 'eviction failed; retrying');
        });
      },
      onError: (what, err) => log.error({ err: (err as Error).message }, `failed ${what}`),
    }),
    {
      name: config.nri.name,
      index: config.nri.index,
      socketPath: config.nri.socket,
      logger: log,
      env,
      observer: {
        request: (method, ms) => metrics.timer(method as NriEventName).observe(ms / 1000),
        state: (s, detail) => {
          state = s;
          if (s === 'disconnected' && detail) lastNriError = `connection closed: ${detail}`;
          stateChanged();
          metrics.pluginRegistered.set(s === 'synchronized' ? 1 : 0);
          if (s === 'synchronized') {
            if (everSynced) metrics.reconnects.inc();
            everSynced = true;
            registeredSince = new Date();
            const rt = stub.runtime;
            const who = rt ? `${rt.runtimeName || 'runtime'} ${rt.runtimeVersion || '(version unknown)'}` : 'the runtime';
            // READY once: systemd's start job completes when containerd can use the plugin
            status(`registered with ${who} since ${registeredSince.toISOString()}`, readySent ? {} : { READY: '1' });
            readySent = true;
          } else if (s === 'registered') {
            status('registered with containerd; synchronizing');
          } else if (s === 'disconnected') {
            registeredSince = undefined;
            status(`disconnected from containerd${detail ? ` (${detail})` : ''}; reconnecting`);
          }
        },
        retrying: (reason) => {
          lastNriError = reason.replace(/^nri: /, '').replace(/\. Retrying$/, '');
          status(`retrying: ${lastNriError}`);
          stateChanged();
        },
      },
    },
  );
  void stub.start();

  let metricsServer: MetricsServer | undefined;
  if (config.metrics.address) {
    metricsServer = await startMetricsServer({
      address: config.metrics.address,
      registry: metrics.registry,
      health: () => ({ ok: state === 'synchronized', detail: state }),
      onError: (err) => log.warn({ err: String(err) }, 'metrics: error'),
      onWarning: (msg, detail) => log.warn(detail, msg),
    });
    log.info({ address: metricsServer.address }, 'metrics: listening');
    metricsAddress = metricsServer.address;
  }
  writeState();
  const stateTimer = setInterval(() => writeState(), 5_000);
  stateTimer.unref();
  // the watchdog: a timer on the event loop, so a stalled loop stops feeding it and systemd
  // restarts the agent (WatchdogSec= in the unit)
  const watchdogMs = notifier ? watchdogIntervalMs(env) : undefined;
  const watchdog = watchdogMs === undefined ? undefined : setInterval(() => notifier?.send({ WATCHDOG: '1' }), watchdogMs);
  watchdog?.unref();
  if (watchdogMs !== undefined) log.info({ everyMs: watchdogMs }, 'systemd: watchdog on');
  if (lastStatus.startsWith('starting')) status(`connecting to containerd at ${config.nri.socket}`);
  log.info({ socket: config.nri.socket, plugin: config.nri.name, index: config.nri.index, backend: backend.kind, version: packageVersion() }, 'nri-memshare started');

  return {
    stub,
    service,
    async stop() {
      if (watchdog) clearInterval(watchdog);
      clearInterval(stateTimer);
      status('stopping', { STOPPING: '1' });
      stopping = true;
      stub.stop();
      service.close();
      await backend.close?.();
      await cluster?.stop();
      await kube?.stop();
      store.close();
      declarations.stop();
      await metricsServer?.close();
      writeState('stopped'); // before the ledger closes: the counts read it
      await ledger.close();
      notifier?.close();
    },
  };
}
