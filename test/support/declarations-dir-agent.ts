// The agent's declarations directory alone, in a process with the heap the launcher gives the agent
// (the test passes packaging/nri-memshare.sh's flags): scans DIR at start, prints one JSON line,
// then on each line "rescan" on stdin rescans and prints another; exits at the end of stdin.
//   node --max-old-space-size=128 declarations-dir-agent.js DIR
import { createInterface } from 'node:readline';
import { DeclarationsDirectory } from '../../plugin/declarations';
import { DEFAULT_LIMITS } from '../../plugin/model/types';

const dir = new DeclarationsDirectory(process.argv[2], { limits: DEFAULT_LIMITS, watch: false, rescanIntervalMs: 0 });
const report = () => {
  (globalThis as { gc?: () => void }).gc?.();
  const line = {
    declarations: dir.list().map((d) => `${d.namespace}/${d.name}`).sort(),
    problems: dir.errors().map((p) => p.message),
    heapUsedMiB: +(process.memoryUsage().heapUsed / 1048576).toFixed(1),
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
};
dir.start();
report();
const rl = createInterface({ input: process.stdin });
rl.on('line', (l) => {
  if (l.trim() === 'rescan') void dir.rescan().then(report);
});
rl.on('close', () => {
  dir.stop();
  process.exit(0);
});
