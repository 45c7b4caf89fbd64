// The shipped agent is one bundled file (scripts/bundle.js), and its start-up loads only what the
// config uses (docs/performance.md has what each costs). These tests pin the what, not the time:
// which files and Node.js built-ins a start on a plain node loads, and the bundle's assert shim.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPlugin } from '../e2e/plugin-process';
import { AGENT_CLI } from '../support/agent-cli';
import { waitFor } from '../support/util';
import { tempDirs } from '../support/cleanup';

const ROOT = join(__dirname, '..', '..', '..');
// removed after the file's last test
const dir = tempDirs(test, 'bundle-test-')();

interface Loaded {
  files: string[];
  builtins: string[];
}

/** Starts the agent on a config, waits for `ready`, stops it, and returns what it had loaded. */
async function loadedBy(config: Record<string, unknown>, ready: RegExp): Promise<Loaded> {
  const cfg = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(cfg, JSON.stringify(config));
  const out = `${cfg}.loaded.json`;
  const preload = join(dir, 'record-loads.js');
  // SIGUSR2 (which the agent leaves alone) asks for the lists, whatever the agent is doing then
  writeFileSync(preload, `process.on('SIGUSR2', () => {
    const fs = require('fs');
    fs.writeFileSync(${JSON.stringify(`${out}.tmp`)}, JSON.stringify({
      files: Object.keys(require.cache), builtins: process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)) }));
    fs.renameSync(${JSON.stringify(`${out}.tmp`)}, ${JSON.stringify(out)}); // whole or not there
  });`);
  const p = startPlugin(['-r', preload, AGENT_CLI, 'run', '--config', cfg]);
  try {
    await p.waitFor(ready);
    p.child.kill('SIGUSR2');
    await waitFor(() => existsSync(out), 'the loaded-modules list', 10_000);
  } finally {
    await p.kill('SIGTERM');
  }
  return JSON.parse(readFileSync(out, 'utf8')) as Loaded;
}

function baseConfig(name: string): Record<string, unknown> {
  const d = join(dir, name);
  mkdirSync(join(d, 'decl'), { recursive: true });
  return {
    nri: { socket: join(d, 'no-runtime.sock'), name: 'memshare', index: '50' },
    stateDir: join(d, 'state'), sharesDir: join(d, 'shares'), declarationsDir: join(d, 'decl'),
    metrics: { address: '' }, log: { level: 'info' },
  };
}

test('a start on a node without Kubernetes or metrics loads the bundle and koffi only, and none of the built-ins it does not use', async () => {
  const loaded = await loadedBy(baseConfig('plain'), /Retrying/);
  const files = loaded.files.filter((f) => f !== join(dir, 'record-loads.js'));
  assert.equal(files.filter((f) => !f.includes('/node_modules/koffi/')), [AGENT_CLI], files.join('\n'));
  assert.ok(files.some((f) => f.endsWith('koffi.node')), 'koffi from its prebuilt binary');
  for (const b of ['assert', 'crypto', 'zlib', 'http', 'https', 'tls']) assert.not.ok(loaded.builtins.includes(b), `node:${b} loaded`);
  assert.ok(loaded.builtins.includes('net'), 'the NRI socket is there (the list is real)');
});

test('metrics served: node:http is loaded then, and only then', async () => {
  const loaded = await loadedBy({ ...baseConfig('metrics'), metrics: { address: '127.0.0.1:0' } }, /metrics: listening/);
  assert.ok(loaded.builtins.includes('http'), loaded.builtins.join(' '));
  assert.not.ok(loaded.builtins.includes('https'));
});

test('the bundle\'s assert: the call form passes or throws node:assert\'s AssertionError; the rest is node:assert\'s', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const shim = require(join(ROOT, 'scripts', 'bundle-assert.js')) as ((v: unknown, m?: string) => void) & { strictEqual: unknown; AssertionError: unknown };
  const real = require('node:assert') as typeof import('node:assert');
  assert.not.throws(() => shim(1, 'fine'));
  try {
    shim(0, 'sonic.fd must be a number');
    assert.unreachable('a false value must throw');
  } catch (err) {
    assert.instance(err, real.AssertionError);
    assert.is((err as Error).message, 'sonic.fd must be a number');
  }
  assert.is(shim.strictEqual, real.strictEqual);
  assert.is(shim.AssertionError, real.AssertionError);
});


test.run();
