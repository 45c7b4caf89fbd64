// CLI habits: `version` (and --json), `help`, `--log-level` for `run`, and the bash completion
// the RPM installs, which offers exactly the commands `help` lists.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { startPlugin } from '../e2e/plugin-process';
import { SKIP_TLS_VERIFY, kubeconfigText } from '../support/fake-apiserver-https';
import { waitFor } from '../support/util';
import { AGENT_CLI } from '../support/agent-cli';
import { EXIT_CONFIG } from '../../plugin/agent/config';
import { tempDirs } from '../support/cleanup';
const tempDir = tempDirs(test, 'memshare-cli-');

const ROOT = join(__dirname, '..', '..', '..');
const CLI = AGENT_CLI;
const COMPLETION = join(ROOT, 'packaging', 'nri-memshare.bash-completion');
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

test('version prints the package, NRI protocol and Node.js versions; --json as an object; --version one line', () => {
  const t = cli('version');
  assert.is(t.status, 0);
  assert.equal(t.stdout.split('\n'), [`nri-memshare ${version}`, 'NRI protocol v0.12', `Node.js ${process.version}`, '']);
  const j = cli('version', '--json');
  assert.is(j.status, 0);
  assert.equal(JSON.parse(j.stdout), { version, nriVersion: 'v0.12', node: process.version });
  assert.is(cli('--version').stdout, `nri-memshare ${version}\n`);
});

test('per-command help: COMMAND --help and help COMMAND print its options and exit status; -V is --version', () => {
  for (const cmd of ['run', 'status', 'check-config', 'version', 'help']) {
    const a = cli(cmd, '--help');
    assert.is(a.status, 0, a.stderr);
    assert.match(a.stdout, new RegExp(`^usage: nri-memshare ${cmd}\\b`));
    assert.is(cli('help', cmd).stdout, a.stdout);
    if (cmd !== 'version') assert.match(a.stdout, /\nexit status/);
  }
  assert.match(cli('run', '--help').stdout, /\b78 \(EX_CONFIG\)/);
  const s = cli('status', '--help').stdout;
  for (const code of ['0', '1', '2', '3', '4']) assert.match(s, new RegExp(`^  ${code}  `, 'm'), `status --help lists exit ${code}`);
  assert.is(cli('help', 'frobnicate').status, 2);
  assert.is(cli('-V').stdout, cli('--version').stdout);
});

test('package.json bin is the bundle, executable as it is', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  const bin = join(ROOT, pkg.bin['nri-memshare']);
  assert.is(bin, AGENT_CLI);
  assert.ok((statSync(bin).mode & 0o111) === 0o111, `${bin} is not executable`);
  assert.match(readFileSync(bin, 'utf8'), /^#!\/usr\/bin\/env node\n/);
  const r = spawnSync(bin, ['-V'], { encoding: 'utf8', env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` } });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /^nri-memshare \d+\.\d+\.\d+/);
});

test('help and --help print the usage; no command is a usage error; an unknown one names itself', () => {
  const h = cli('help');
  assert.is(h.status, 0);
  for (const word of ['run', 'status', 'check-config', 'version', 'help', '--log-level LEVEL']) assert.ok(h.stdout.includes(word), `usage lacks ${word}`);
  assert.is(cli('--help').stdout, h.stdout);
  assert.is(cli().status, 2);
  const u = cli('frobnicate');
  assert.is(u.status, 2);
  assert.match(u.stderr, /^nri-memshare: unknown command "frobnicate"/);
  const l = cli('run', '--log-level', 'loud');
  assert.is(l.status, 2);
  assert.match(l.stderr, /--log-level "loud": not one of trace, debug, info, warn, error, fatal, silent/);
});

test('run: a refused config exits with EXIT_CONFIG (78, which the unit does not restart on); any other start failure exits 1', () => {
  const dir = tempDir();
  const good = { nri: { socket: join(dir, 'absent.sock') }, sharesDir: join(dir, 'shares'), declarationsDir: join(dir, 'shares.d'), metrics: { address: '' } };
  const run = (config: unknown) => {
    const path = join(dir, `c${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(path, typeof config === 'string' ? config : JSON.stringify(config));
    return spawnSync(process.execPath, [CLI, 'run', '--config', path], { encoding: 'utf8', timeout: 20000 });
  };
  for (const bad of [{ ...good, stateDir: join(dir, 'state'), limits: { maxShareBytes: 'lots' } }, { ...good, stateDir: join(dir, 'state'), stateDri: '/x' }, '{"stateDir": ', { ...good, stateDir: join(dir, 'state'), dra: { enabled: true } }]) {
    const r = run(bad);
    assert.is(r.status, EXIT_CONFIG, `${JSON.stringify(bad)}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /"level":"fatal".*"msg":"start failed: config /);
  }
  assert.is(spawnSync(process.execPath, [CLI, 'run', '--config', join(dir, 'missing.json')], { encoding: 'utf8' }).status, EXIT_CONFIG, 'no config file at all');
  // a good config whose state directory cannot be made (a file is in its way): not the config's
  // fault as written, and it may heal (a mount that comes late): exit 1, restarted
  writeFileSync(join(dir, 'in-the-way'), '');
  const other = run({ ...good, stateDir: join(dir, 'in-the-way', 'state') });
  assert.is(other.status, 1, other.stdout + other.stderr);
  assert.match(other.stdout, /"msg":"start failed: /);
  assert.is.not(EXIT_CONFIG, 1);
});

test("--log-level overrides the config's log.level for run", async () => {
  const dir = tempDir();
  for (const d of ['state', 'shares', 'shares.d']) mkdirSync(join(dir, d));
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify({
    nri: { socket: join(dir, 'absent.sock') }, stateDir: join(dir, 'state'), sharesDir: join(dir, 'shares'),
    declarationsDir: join(dir, 'shares.d'), metrics: { address: '' }, log: { level: 'warn' },
  }));
  const RETRY = /"level":"warn".*does not exist/;
  // the config says warn: the retry warning shows, the start line (info, written before it) does not
  const quiet = startPlugin([CLI, 'run', '--config', configPath]);
  try {
    await quiet.waitFor(RETRY);
    assert.not.match(quiet.output(), /"level":"info"/);
  } finally {
    await quiet.kill('SIGKILL');
  }
  const loud = startPlugin([CLI, 'run', '--config', configPath, '--log-level', 'debug']);
  try {
    await loud.waitFor(RETRY);
    assert.match(loud.output(), /"level":"info".*"msg":"nri-memshare started"/);
  } finally {
    await loud.kill('SIGKILL');
  }
});

test('a SIGTERM while the agent starts (waiting for the first Kubernetes list) stops it once started, exit 0', async () => {
  const dir = tempDir();
  // an API server that takes connections and never answers: the start waits for its list
  const sockets: Socket[] = [];
  const silent = createServer((s) => void sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  try {
    for (const d of ['state', 'shares', 'shares.d']) mkdirSync(join(dir, d));
    const { port } = silent.address() as AddressInfo;
    writeFileSync(join(dir, 'kubeconfig'), kubeconfigText(`https://127.0.0.1:${port}`, '    token: t\n', SKIP_TLS_VERIFY));
    const configPath = join(dir, 'config.json');
    writeFileSync(configPath, JSON.stringify({
      nri: { socket: join(dir, 'absent.sock') }, stateDir: join(dir, 'state'), sharesDir: join(dir, 'shares'),
      declarationsDir: join(dir, 'shares.d'), metrics: { address: '' }, log: { level: 'info' },
      kubernetes: { kubeconfig: join(dir, 'kubeconfig'), status: false, events: false },
    }));
    const agent = startPlugin([CLI, 'run', '--config', configPath]);
    await waitFor(() => sockets.length > 0, 'the agent to connect to the API server', 20_000);
    assert.not.match(agent.output(), /nri-memshare started/, 'still starting');
    const exit = new Promise<[number | null, string | null]>((r) => agent.child.once('exit', (code, sig) => r([code, sig])));
    agent.child.kill('SIGTERM');
    await agent.waitFor(/"msg":"stopping once started"/);
    const [code, sig] = await exit;
    assert.equal([code, sig], [0, null], agent.output());
    assert.match(agent.output(), /"msg":"nri-memshare started"[\s\S]*"msg":"stopping"/);
  } finally {
    for (const s of sockets) s.destroy();
    silent.close();
  }
});

/** What the completion offers for the words typed so far (the last one being completed). */
function complete(...words: string[]): string[] {
  const script = `source ${JSON.stringify(COMPLETION)}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _nri_memshare; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', cwd: ROOT });
  assert.is(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).sort();
}

test('bash completion: commands, options per command, log levels, and the same commands as help', () => {
  assert.equal(complete('nri-memshare', 'st'), ['status']);
  assert.equal(complete('nri-memshare', 'run', '--'), ['--config', '--log-level', '--socket']);
  assert.equal(complete('nri-memshare', 'run', '--log-level', 'w'), ['warn']);
  assert.equal(complete('nri-memshare', '--config', 'x.json', 'status', '--'), ['--config', '--json']);
  assert.equal(complete('nri-memshare', 'version', ''), ['--json']);
  assert.equal(complete('nri-memshare', '--config', 'packagi'), ['packaging'], 'file names for --config');
  const usage = cli('help').stdout;
  const listed = [...usage.slice(usage.indexOf('commands:'), usage.indexOf('options:')).matchAll(/^ {2}([a-z-]+) /gm)].map((m) => m[1]).sort();
  assert.equal(listed, ['check-config', 'help', 'run', 'status', 'version']);
  assert.equal(complete('nri-memshare', '').filter((w) => !w.startsWith('-')), listed);
});

test('the RPM spec installs the completion where bash-completion looks, and lists it', () => {
  const spec = readFileSync(join(ROOT, 'packaging', 'nri-memshare.spec'), 'utf8');
  assert.match(spec, /^install -D -m 0644 packaging\/nri-memshare\.bash-completion %\{buildroot\}%\{_datadir\}\/bash-completion\/completions\/nri-memshare$/m);
  assert.match(spec, /^%\{_datadir\}\/bash-completion\/completions\/nri-memshare$/m);
});

test.run();
