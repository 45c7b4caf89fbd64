// The UB holder process (plugin/backends/ubs/holder/ubs-holder.ts) and its protocol, through its
// socket, with the C double of libubsm_sdk.so behind it (it stands in for the vendor SDK and its
// daemon, which cannot run here) and the stand-in daemon socket. Bad input gets an error naming
// the problem and the holder stays up; its socket is root's only; versions are negotiated.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRequest, LineReader, MAX_LINE_BYTES } from '../../plugin/backends/ubs/holder/protocol';

const repo = join(__dirname, '..', '..', '..');
const out = join(repo, 'dist', 'native', 'ubs');
const libPath = join(out, 'lib', 'libubsm_sdk.so');
const holderJs = join(repo, 'dist', 'plugin', 'backends', 'ubs', 'holder', 'ubs-holder.js');
if (!existsSync(libPath)) {
  const r = spawnSync('bash', [join(repo, 'native', 'ubs', 'build.sh'), out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`native/ubs/build.sh failed: ${r.stderr}`);
}
const root = mkdtempSync(join(tmpdir(), 'ubs-holder-'));
const daemonDir = join(root, 'matrix', 'memory');
const stateDir = join(root, 'state');
mkdirSync(join(root, 'dev'), { recursive: true });
mkdirSync(stateDir, { mode: 0o777 });
const env = {
  ...process.env,
  UBSM_DOUBLE_DIR: daemonDir,
  UBSM_DOUBLE_STATE: stateDir,
  UBSM_DOUBLE_DEV_DIR: join(root, 'dev'),
  UBSM_DOUBLE_OBMM: join(out, 'lib', 'libobmm.so.1'),
  UBSM_DOUBLE_MAJOR: '509',
  UBSM_DOUBLE_NODE: 'local',
  HCOM_CONNECTION_RETRY_TIMES: '1',
  HCOM_CONNECTION_RETRY_INTERVAL_SEC: '1',
};
const children: ChildProcess[] = [];

function startHolder(sock: string, extraEnv: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [holderJs, '--socket', sock, '--sdk', libPath], { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return child;
}

async function dial(sock: string): Promise<Socket> {
  for (let i = 0; i < 200; i++) {
    const s = await new Promise<Socket | undefined>((resolve) => {
      const c = createConnection(sock);
      c.once('connect', () => resolve(c));
      c.once('error', () => resolve(undefined));
    });
    if (s) return s;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nothing answers on ${sock}`);
}

/** Sends raw text, returns the reply lines that arrive within ms. */
async function exchange(s: Socket, text: string, lines: number): Promise<Array<Record<string, unknown>>> {
  const got: Array<Record<string, unknown>> = [];
  let buf = '';
  const done = new Promise<void>((resolve) => {
    const on = (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        got.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
        buf = buf.slice(nl + 1);
      }
      if (got.length >= lines) {
        s.off('data', on);
        resolve();
      }
    };
    s.on('data', on);
    setTimeout(resolve, 3000).unref();
  });
  s.write(text);
  await done;
  return got;
}

const exited = (c: ChildProcess, ms: number) =>
  new Promise<boolean>((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    c.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });

test('parseRequest: every malformed request is named, a good one is typed', () => {
  assert.equal(parseRequest('{"id":1,"op":"hello","protocols":[1]}'), { id: 1, req: { op: 'hello', protocols: [1] } });
  assert.equal(parseRequest('{"id":2,"op":"map","name":"nms.a.b","lengthBytes":134217728,"prot":1}'), { id: 2, req: { op: 'map', name: 'nms.a.b', lengthBytes: 134217728, prot: 1 } });
  const problem = (line: string) => {
    const p = parseRequest(line);
    return 'problem' in p ? p.problem : 'ok';
  };
  assert.match(problem('nope'), /^not JSON/);
  assert.is(problem('[1]'), 'not an object');
  assert.is(problem('{"op":"hello"}'), 'id must be a non-negative integer');
  assert.is(problem('{"id":-1,"op":"hello"}'), 'id must be a non-negative integer');
  assert.is(problem('{"id":1,"op":"format-disk"}'), 'unknown op "format-disk"');
  assert.is(problem('{"id":1,"op":"map","name":"x","lengthBytes":-5,"prot":1}'), 'map: lengthBytes is missing or malformed');
  assert.is(problem('{"id":1,"op":"allocate","region":"default","name":"x","sizeBytes":1,"mode":"0666","flags":0}'), 'allocate: mode is missing or malformed');
  assert.is(problem(`{"id":1,"op":"unmap","name":"${'x'.repeat(300)}"}`), 'unmap: name is missing or malformed');
  assert.is(problem('{"id":1,"op":"hello","protocols":"1"}'), 'hello: protocols is missing or malformed');
});

test('LineReader: splits lines across chunks and refuses a line past the cap', () => {
  const lines: string[] = [];
  let tooLong = 0;
  const r = new LineReader((l) => lines.push(l), () => tooLong++);
  r.push('ab');
  r.push('c\nde\n\nf');
  assert.equal(lines, ['abc', 'de']);
  r.push('x'.repeat(MAX_LINE_BYTES + 1));
  assert.is(tooLong, 1);
});

test('the holder: socket 0600, version negotiated, bad requests answered with the problem, a too-long line drops only that connection', async () => {
  const sock = join(root, 'h1.sock');
  const h = startHolder(sock);
  const s = await dial(sock);
  assert.is(statSync(sock).mode & 0o777, 0o600, 'only root may connect');
  const [none] = await exchange(s, '{"id":1,"op":"hello","protocols":[99]}\n', 1);
  assert.match(String(none.error), /no common protocol: the holder speaks 1, the agent 99/);
  const [hello] = await exchange(s, '{"id":2,"op":"hello","protocols":[1,2]}\n', 1);
  const hh = hello.hello as { protocol: number; pid: number; instance: string; held: unknown[] };
  assert.is(hh.protocol, 1);
  assert.is(hh.pid, h.pid);
  assert.match(hh.instance, /^[0-9a-f]{16}$/);
  assert.equal(hh.held, []);
  const bad = await exchange(s, 'garbage\n{"id":3,"op":"map","name":"x"}\n', 2);
  assert.match(String(bad[0].error), /bad request: not JSON/);
  assert.is(bad[1].id, 3);
  assert.match(String(bad[1].error), /bad request: map: lengthBytes is missing or malformed/);
  // a line past 1 MiB: that connection is dropped; the holder serves the next one
  const closed = new Promise((r) => s.once('close', r));
  s.write('x'.repeat(MAX_LINE_BYTES + 10));
  await closed;
  assert.is(h.exitCode, null, 'the holder stays up');
  const s2 = await dial(sock);
  const [again] = await exchange(s2, '{"id":4,"op":"hello","protocols":[1]}\n', 1);
  assert.is((again.hello as { instance: string }).instance, hh.instance, 'the same holder answers');
  s2.destroy();
  // a second holder on the same socket leaves the first in place
  const dup = startHolder(sock);
  assert.ok(await exited(dup, 10000), 'a second holder exits');
  assert.is(dup.exitCode, 0);
  assert.is(h.exitCode, null);
  // the holder goes when its socket is removed (its state dir deleted: nobody could find it again)
  rmSync(sock);
  assert.ok(await exited(h, 10000), 'the holder left once its socket was gone');
});

test('the holder: an idle holder (no mapping, no agent) exits; "shutdown" ends it at once', async () => {
  const sock = join(root, 'h2.sock');
  const h = startHolder(sock, { NRI_MEMSHARE_HOLDER_IDLE_MS: '500' });
  const s = await dial(sock);
  await exchange(s, '{"id":1,"op":"hello","protocols":[1]}\n', 1);
  await new Promise((r) => setTimeout(r, 1000));
  assert.is(h.exitCode, null, 'not idle while an agent is connected');
  s.destroy();
  assert.ok(await exited(h, 5000), 'idle: gone');
  assert.not.ok(existsSync(sock), 'its socket removed');
  const h3 = startHolder(join(root, 'h3.sock'));
  const s3 = await dial(join(root, 'h3.sock'));
  const [r] = await exchange(s3, '{"id":7,"op":"shutdown"}\n', 1);
  assert.equal(r, { id: 7, code: 0 });
  assert.ok(await exited(h3, 5000));
});

test.after(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

test.run();
