// Runs a plugin (the real agent, or a test fixture) as its own process beside a test containerd,
// and waits on what it prints: each plugin reports its NRI state on stderr or in its JSON log.
import { spawn, type ChildProcess } from 'node:child_process';

export interface PluginProcess {
  readonly child: ChildProcess;
  /** everything it printed so far */
  output(): string;
  /** resolves when `pattern` has matched `times` times in its output in total */
  waitFor(pattern: RegExp, times?: number, timeoutMs?: number): Promise<void>;
  count(pattern: RegExp): number;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Runs `node args...`. `launcher`: a command that execs its arguments (e.g. setpriv ... --), put
 * before node; the child's pid is then node's once the launcher has exec'd. `node`: the command
 * that runs node in place of process.execPath (test/e2e/agent.ts: the aarch64 node under qemu).
 */
export function startPlugin(args: string[], env: NodeJS.ProcessEnv = {}, launcher: readonly string[] = [], node: readonly string[] = [process.execPath]): PluginProcess {
  const [cmd, ...argv] = [...launcher, ...node, ...args];
  const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const waiters = new Set<() => void>();
  const feed = (b: Buffer) => {
    out += b.toString();
    if (process.env.NRI_MEMSHARE_DEBUG) process.stdout.write(`  [plugin] ${b.toString()}`);
    for (const w of [...waiters]) w();
  };
  child.stdout!.on('data', feed);
  child.stderr!.on('data', feed);
  let exited = false;
  child.on('exit', () => {
    exited = true;
    for (const w of [...waiters]) w();
  });
  const count = (pattern: RegExp) => (out.match(new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`)) ?? []).length;
  return {
    child,
    output: () => out,
    count,
    waitFor(pattern, times = 1, timeoutMs = 20000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (count(pattern) >= times) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          } else if (exited) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`plugin exited before printing ${pattern} x${times}; output:\n${out.slice(-3000)}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`plugin did not print ${pattern} x${times} within ${timeoutMs} ms; output:\n${out.slice(-3000)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    kill(signal = 'SIGTERM') {
      return new Promise((resolve) => {
        if (exited) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      });
    },
  };
}
