// check-config catches what `run` would refuse (issue 12.4): unknown keys with the nearest known
// one, files the config names (kubeconfig and the CA it points to, the declarations directory),
// and config files that are not regular files or not JSON, without ever echoing their bytes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nearest } from '../../plugin/config/reader';
import { kubeconfigText } from '../support/fake-apiserver-https';
import { AGENT_CLI } from '../support/agent-cli';
import { tempDirs } from '../support/cleanup';

const CLI = AGENT_CLI;
// removed after the file's last test
const dir = tempDirs(test, 'check-config-')();
const declarations = join(dir, 'shares.d');
mkdirSync(declarations);

function check(config: unknown | string): { status: number | null; out: string } {
  const path = typeof config === 'string' && config.startsWith('/') ? config : join(dir, `c${Math.random().toString(36).slice(2)}.json`);
  if (path !== config) writeFileSync(path, typeof config === 'string' ? config : JSON.stringify(config));
  const r = spawnSync(process.execPath, [CLI, 'check-config', '--config', path], { encoding: 'utf8', timeout: 20000 });
  return { status: r.status, out: r.stdout + r.stderr };
}
const base = { stateDir: join(dir, 'state'), sharesDir: join(dir, 'shares'), declarationsDir: declarations };

test('a good config is ok', () => {
  const r = check(base);
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /: ok\n$/);
});

test('key names from the file are quoted and escaped: a newline and an escape sequence forge no line and reach no terminal', () => {
  const forged = 'x\n\u001b[2Kwarning: all good\u009b31m\u202e';
  const r = check({ ...base, [forged]: 1, limits: { [`y\r${forged}`]: 2 } });
  assert.is(r.status, 1, r.out);
  const lines = r.out.split('\n');
  assert.not.ok(lines.some((l) => l.startsWith('warning:') || l.startsWith('\r')), r.out);
  assert.not.match(r.out, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/, 'no control character but the line ends');
  assert.ok(lines.some((l) => l.endsWith(': "x\\n\\u001b[2Kwarning: all good\\x9b31m\\u202e": unknown key')), r.out);
  assert.ok(lines.some((l) => l.includes(': limits."y\\r') && l.endsWith('": unknown key')), r.out);
  // and a config path with a newline in it is escaped too
  const odd = join(dir, 'odd\nwarning: name.json');
  writeFileSync(odd, JSON.stringify(base));
  const ok = check(odd);
  assert.is(ok.status, 0, ok.out);
  assert.is(ok.out.split('\n').length, 2, ok.out);
  assert.match(ok.out, 'odd\\nwarning: name.json: ok');
});

test('an unknown key names the nearest known one, at any depth; a far-off key gets no guess', () => {
  const r = check({ ...base, sharesdir: '/x', limits: { maxShareByte: '1Gi' }, metrics: { adress: '' }, completelyDifferent: 1 });
  assert.is(r.status, 1, r.out);
  assert.match(r.out, /sharesdir: unknown key \(did you mean "sharesDir"\?\)/);
  assert.match(r.out, /limits\.maxShareByte: unknown key \(did you mean "limits\.maxShareBytes"\?\)/);
  assert.match(r.out, /metrics\.adress: unknown key \(did you mean "metrics\.address"\?\)/);
  assert.match(r.out, /completelyDifferent: unknown key\n/);
  assert.is(nearest('stateDir', ['stateDir']), 'stateDir');
  assert.is(nearest('x', ['stateDir', 'nri']), undefined);
});

test('a kubeconfig that is missing, or names a CA file that is missing, is a problem naming the file', () => {
  const missing = join(dir, 'no-kubeconfig');
  let r = check({ ...base, kubernetes: { kubeconfig: missing } });
  assert.is(r.status, 1, r.out);
  assert.match(r.out, new RegExp(`kubernetes\\.kubeconfig: .*${missing}`));
  const kc = join(dir, 'kubeconfig');
  const ca = join(dir, 'missing-ca.crt');
  writeFileSync(kc, kubeconfigText('https://127.0.0.1:6443', '    token: abc\n', `    certificate-authority: ${ca}\n`));
  r = check({ ...base, kubernetes: { kubeconfig: kc } });
  assert.is(r.status, 1, r.out);
  assert.match(r.out, new RegExp(`kubernetes\\.kubeconfig: .*${ca}`));
  writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  r = check({ ...base, kubernetes: { kubeconfig: kc } });
  assert.is(r.status, 0, `with the CA file there: ${r.out}`);
});

test('the declarations directory: missing is a warning (run starts and waits for it), a file instead of it a problem', () => {
  let r = check({ ...base, declarationsDir: join(dir, 'not-yet') });
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /warning: declarationsDir: ".*not-yet" does not exist/);
  assert.match(r.out, /ok \(1 warning\)/);
  const file = join(dir, 'a-file');
  writeFileSync(file, '');
  r = check({ ...base, declarationsDir: file });
  assert.is(r.status, 1, r.out);
  assert.match(r.out, /declarationsDir: ".*a-file" is not a directory/);
});

test('a config file that is not JSON is refused by line and column, never echoing its bytes (issue 11.8)', () => {
  const secret = join(dir, 'shadow');
  writeFileSync(secret, 'root:$6$s3cr3tSALT$hashhashhash:20000:0:99999:7:::\n');
  const r = check(secret);
  assert.is(r.status, 1, r.out);
  assert.match(r.out, /is not valid JSON: line 1, column 1/);
  assert.not.match(r.out, /s3cr3t|root:/);
  const dup = check('{"stateDir": "/var/lib/a", "stateDir": "/var/lib/b"}');
  assert.is(dup.status, 1, dup.out);
  assert.match(dup.out, /duplicate key/);
});

test('a config path that is a device or a directory is refused at once, not read', () => {
  for (const p of ['/dev/zero', dir]) {
    const r = check(p);
    assert.is(r.status, 1, r.out);
    assert.match(r.out, /not a regular file/);
  }
});

test.run();

test('dra: enabled without the API server is refused naming both keys; a CDI dir others may write is a problem, a missing registry dir a warning', () => {
  let r = check({ ...base, dra: { enabled: true } });
  assert.is(r.status, 1, r.out);
  assert.match(r.out, /dra\.enabled: DRA reads ResourceClaims from the API server: set kubernetes\.kubeconfig or kubernetes\.inCluster too/);
  const kc = join(dir, 'dra-kubeconfig');
  writeFileSync(kc, kubeconfigText('https://127.0.0.1:6443', '    token: abc\n', '    insecure-skip-tls-verify: true\n'));
  const cdiDir = join(dir, 'dra-cdi');
  mkdirSync(cdiDir, { mode: 0o777 });
  chmodSync(cdiDir, 0o777);
  const dra = { enabled: true, registryDir: join(dir, 'no-registry'), pluginDir: join(dir, 'dra-plugin'), cdiDir };
  r = check({ ...base, kubernetes: { kubeconfig: kc }, dra });
  assert.is(r.status, 1, r.out);
  assert.match(r.out, /dra\.cdiDir: ".*dra-cdi" must not be writable by group or others, has mode 0777/);
  chmodSync(cdiDir, 0o755);
  r = check({ ...base, kubernetes: { kubeconfig: kc }, dra });
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /warning: dra\.registryDir: ".*no-registry" does not exist; the kubelet makes it/);
});
