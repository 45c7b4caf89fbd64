// The declaration sources the config names, started and merged: the declarations directory
// always, the Kubernetes ShareMemory watch when configured (a file declaration wins a clash).
// plugin/declarations/index.ts would load the Kubernetes client (http, https, tls) on every node:
// the files' parts come from their own modules, the Kubernetes parts only when configured.
import { DeclarationsDirectory } from '../declarations/directory';
import { MergedDeclarationStore } from '../declarations/store';
import type { KubeCredentials } from '../kube/kubeconfig';
import type { KubernetesDeclarationSource } from '../declarations/kubernetes';
import type { Config } from './config';
import type { Logger } from './logger';
import type { DeclarationSourceState } from './agent-state';

export interface DeclarationSources {
  readonly store: MergedDeclarationStore;
  /** the Kubernetes credentials, when the config names an API server (the cluster writers use them too) */
  readonly kubeCredentials: KubeCredentials | undefined;
  /** each source's state, for `status` */
  states(): DeclarationSourceState[];
  /** when the Kubernetes list last succeeded or its watch last delivered (ms); undefined without Kubernetes or before */
  kubernetesLastSyncAt(): number | undefined;
  /** called when a source reports a problem or the merged declarations change */

  onChange(listener: () => void): void;
  stop(): Promise<void>;
}

export async function startDeclarationSources(config: Config, log: Logger): Promise<DeclarationSources> {
  const directory = new DeclarationsDirectory(config.declarationsDir, {
    limits: config.limits,
    onListenerError: (err) => log.error({ err: String(err) }, 'declarations: listener failed'),
  });
  directory.onProblem((p) => log.warn({ source: p.source, problem: p.message }, 'declarations: problem'));
  directory.start();
  const store = new MergedDeclarationStore([directory]);
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

  return {
    store,
    kubeCredentials,
    states() {
      const sources: DeclarationSourceState[] = [];
      const dirProblems = directory.errors().map((p) => p.message);
      sources.push({ kind: 'directory', location: config.declarationsDir, state: dirProblems.length ? 'problems' : 'ok', declarations: directory.list().length, problems: dirProblems });
      if (kube) {
        const problems = kube.errors().map((p) => p.message);
        sources.push({
          kind: 'kubernetes', location: kubeWhere, state: kube.connected ? 'connected' : problems.length ? 'failing' : 'connecting',
          declarations: kube.list().length, problems, ...(kubeTlsVerify === undefined ? {} : { tlsVerify: kubeTlsVerify }),
        });
      }
      return sources;
    },
    kubernetesLastSyncAt: () => kube?.lastSyncAt,
    onChange(listener) {
      directory.onProblem(listener);
      store.onChange(listener);
    },
    async stop() {
      await kube?.stop();
      store.close();
      directory.stop();
    },
  };
}
