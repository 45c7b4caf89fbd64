// The agent's Kubernetes source alone, in a process with the heap the launcher gives the agent
// (packaging/nri-memshare.sh: --max-semi-space-size=1 --max-old-space-size=128): lists a server's
// ShareMemory objects and prints one JSON line with what it kept and what that cost, then exits.
//   node --max-old-space-size=128 --expose-gc kube-list-agent.js URL
// Exits 0 with the line after the first list; 1 with the problem if the list does not complete.
import { KubernetesDeclarationSource } from '../../plugin/declarations';
import { parseKubeconfig } from '../../plugin/kube';
import { DEFAULT_LIMITS } from '../../plugin/model/types';
import { anonymousKubeconfigText } from './fake-apiserver-https';

async function main(): Promise<void> {
  const url = process.argv[2];
  const started = performance.now();
  let problems = 0;
  let lastProblem = '';
  const src = new KubernetesDeclarationSource({
    credentials: parseKubeconfig(anonymousKubeconfigText(url), '/nonexistent/kubeconfig'),
    limits: DEFAULT_LIMITS,
    backoff: { initialMs: 100, maxMs: 100 },
    requestTimeoutMs: 600_000,
    onProblem: (p) => {
      problems++;
      lastProblem = p.message;
      // a list that fails (rather than leaving objects out) is the failure this process reports
      if (/: list: /.test(p.message)) {
        process.stdout.write(`${JSON.stringify({ ok: false, problem: p.message })}\n`);
        process.exit(1);
      }
    },
  });
  src.start();
  await src.ready();
  const listMs = performance.now() - started;
  (globalThis as { gc?: () => void }).gc?.();
  const mem = process.memoryUsage();
  const line = {
    ok: true,
    declarations: src.list().length,
    problems,
    lastProblem,
    listMs: Math.round(listMs),
    heapUsedMiB: +(mem.heapUsed / 1048576).toFixed(1),
    rssMiB: +(mem.rss / 1048576).toFixed(1),
    maxRssMiB: +(process.resourceUsage().maxRSS / 1024).toFixed(1),
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  await src.stop();
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stdout.write(`${JSON.stringify({ ok: false, problem: String(err) })}\n`);
  process.exit(1);
});
