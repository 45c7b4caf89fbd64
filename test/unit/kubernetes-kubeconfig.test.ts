// Credentials for the Kubernetes API: kubeconfig files and in-cluster service accounts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { KubeconfigError, loadInCluster, loadKubeCredentials, loadKubeconfig, parseKubeconfig } from '../../plugin/kube';
import { tempDirs } from '../support/cleanup';

const tempDir = tempDirs(test, 'memshare-kubeconfig-');

function config(cluster: string, user: string, head = 'current-context: ctx\n'): string {
  return `apiVersion: v1
kind: Config
${head}contexts:
- name: ctx
  context: {cluster: c1, user: u1, namespace: default}
- name: other
  context: {cluster: c1}
clusters:
- name: c1
  cluster:
${cluster}users:
- name: u1
  user:
${user}`;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** The KubeconfigError thrown by fn; fails if none. */
function refusal(fn: () => unknown): KubeconfigError {
  try {
    fn();
  } catch (err) {
    assert.instance(err, KubeconfigError);
    return err as KubeconfigError;
  }
  return assert.unreachable('expected a KubeconfigError') as never;
}

test('token user and certificate-authority-data', () => {
  const creds = parseKubeconfig(
    config(`    server: https://10.0.0.1:6443\n    certificate-authority-data: ${b64('CA PEM')}\n    tls-server-name: kubernetes\n`, '    token: abc.def\n'),
    '/etc/k/kubeconfig',
  );
  assert.is(creds.server.href, 'https://10.0.0.1:6443/');
  assert.is(creds.description, 'kubeconfig /etc/k/kubeconfig (context ctx)');
  const c = creds.connection();
  assert.is(c.headers.Authorization, 'Bearer abc.def');
  assert.is(c.tls.ca?.toString(), 'CA PEM');
  assert.is(c.tls.rejectUnauthorized, true);
  assert.is(c.tls.servername, 'kubernetes');
  assert.is(c.tls.cert, undefined);
});

test('paths are relative to the kubeconfig file; files are re-read on every connection', () => {
  const dir = tempDir();
  fs.mkdirSync(path.join(dir, 'pki'));
  fs.writeFileSync(path.join(dir, 'pki', 'ca.crt'), 'CA');
  fs.writeFileSync(path.join(dir, 'pki', 'client.crt'), 'CERT 1');
  fs.writeFileSync(path.join(dir, 'pki', 'client.key'), 'KEY 1');
  const file = path.join(dir, 'kubelet.conf');
  fs.writeFileSync(
    file,
    config('    server: https://api.example:6443\n    certificate-authority: pki/ca.crt\n', '    client-certificate: pki/client.crt\n    client-key: pki/client.key\n'),
  );
  const creds = loadKubeconfig(file);
  let c = creds.connection();
  assert.is(c.tls.ca?.toString(), 'CA');
  assert.is(c.tls.cert?.toString(), 'CERT 1');
  assert.is(c.tls.key?.toString(), 'KEY 1');
  assert.equal(c.headers, {});
  // the kubelet rotates its client certificate in place
  fs.writeFileSync(path.join(dir, 'pki', 'client.crt'), 'CERT 2');
  fs.writeFileSync(path.join(dir, 'pki', 'client.key'), 'KEY 2');
  c = creds.connection();
  assert.is(c.tls.cert?.toString(), 'CERT 2');
  assert.is(c.tls.key?.toString(), 'KEY 2');
});

test('tokenFile is relative and re-read; token takes precedence over tokenFile', () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'tok'), 'one\n');
  const file = path.join(dir, 'config');
  fs.writeFileSync(file, config('    server: https://127.0.0.1:8080\n', '    tokenFile: tok\n'));
  const creds = loadKubeconfig(file);
  assert.is(creds.connection().headers.Authorization, 'Bearer one');
  fs.writeFileSync(path.join(dir, 'tok'), 'two\n');
  assert.is(creds.connection().headers.Authorization, 'Bearer two');
  const both = parseKubeconfig(config('    server: https://127.0.0.1:8080\n', '    token: inline\n    tokenFile: tok\n'), file);
  assert.is(both.connection().headers.Authorization, 'Bearer inline');
});

test('an explicit context replaces current-context; a context without a user is anonymous', () => {
  const creds = parseKubeconfig(config('    server: https://h:1\n', '    token: t\n', ''), '/k', { context: 'other' });
  assert.equal(creds.connection().headers, {});
});

test('missing current-context is refused, naming the field', () => {
  const e = refusal(() => parseKubeconfig(config('    server: https://h:1\n', '    token: t\n', ''), '/etc/k/config'));
  assert.is(e.field, 'current-context');
  assert.match(e.message, 'kubeconfig /etc/k/config: current-context: is not set');
});

test('clear errors naming the field', () => {
  const cases: Array<[string, string, string, string]> = [
    // [cluster, user, expected field, expected reason fragment]
    ['    server: https://h:1\n', '    exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}\n', 'users[name=u1].user.exec', 'exec credential plugins are not supported'],
    ['    server: https://h:1\n', '    auth-provider: {name: oidc}\n', 'users[name=u1].user.auth-provider', 'auth-provider plugins are not supported'],
    ['    insecure-skip-tls-verify: true\n', '    token: t\n', 'clusters[name=c1].cluster.server', 'is missing'],
    ['    server: ftp://h\n', '    token: t\n', 'clusters[name=c1].cluster.server', 'only https:// and http://'],
    ['    server: https://h:1\n', '    client-certificate-data: QUJD\n', 'users[name=u1].user.client-key', 'is missing'],
    ['    server: https://h:1\n', '    client-certificate-data: "!!notbase64"\n    client-key-data: QUJD\n', 'users[name=u1].user.client-certificate-data', 'not valid base64'],
    ['    server: https://h:1\n    insecure-skip-tls-verify: true\n    certificate-authority-data: QUJD\n', '    token: t\n', 'clusters[name=c1].cluster.insecure-skip-tls-verify', 'cannot be combined'],
    ['    server: https://h:1\n    certificate-authority: /nonexistent/ca.crt\n', '    token: t\n', 'clusters[name=c1].cluster.certificate-authority', 'cannot read /nonexistent/ca.crt: no such file'],
    ['    server: https://h:1\n    proxy-url: http://proxy:3128\n', '    token: t\n', 'clusters[name=c1].cluster.proxy-url', 'not supported'],
  ];
  for (const [cluster, user, field, reason] of cases) {
    const e = refusal(() => parseKubeconfig(config(cluster, user), '/k'));
    assert.is(e.field, field, e.message);
    assert.match(e.reason, reason);
    assert.match(e.message, `kubeconfig /k: ${field}: `);
  }
  const noContext = refusal(() => parseKubeconfig(config('    server: https://h:1\n', '', 'current-context: nope\n'), '/k'));
  assert.is(noContext.field, 'contexts');
  assert.match(noContext.reason, 'no entry named "nope"');
  const notYaml = refusal(() => parseKubeconfig('clusters: [', '/k'));
  assert.match(notYaml.reason, 'not valid YAML');
  const missingFile = refusal(() => loadKubeconfig('/nonexistent/kubeconfig'));
  assert.match(missingFile.message, 'cannot read /nonexistent/kubeconfig');
});

test('in-cluster: server from the environment, token and CA re-read on each connection', () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'token'), 'sa-token-1');
  fs.writeFileSync(path.join(dir, 'ca.crt'), 'CLUSTER CA');
  const creds = loadInCluster({ env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, serviceAccountDir: dir });
  assert.is(creds.server.origin, 'https://10.96.0.1');
  let c = creds.connection();
  assert.is(c.headers.Authorization, 'Bearer sa-token-1');
  assert.is(c.tls.ca?.toString(), 'CLUSTER CA');
  fs.writeFileSync(path.join(dir, 'token'), 'sa-token-2'); // the kubelet refreshes projected tokens
  c = creds.connection();
  assert.is(c.headers.Authorization, 'Bearer sa-token-2');

  const v6 = loadInCluster({ env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' }, serviceAccountDir: dir });
  assert.is(v6.server.host, '[fd00::1]:6443');
});

test('in-cluster: clear errors outside a pod and without a token', () => {
  const e = refusal(() => loadInCluster({ env: {}, serviceAccountDir: '/nonexistent' }));
  assert.is(e.field, 'KUBERNETES_SERVICE_HOST');
  assert.match(e.message, 'not running in a Kubernetes pod');
  const t = refusal(() => loadInCluster({ env: { KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '1' }, serviceAccountDir: '/nonexistent/sa' }));
  assert.is(t.field, 'token');
  assert.match(t.message, 'cannot read /nonexistent/sa/token');
});

test('loadKubeCredentials follows the agent config', () => {
  const dir = tempDir();
  const file = path.join(dir, 'config');
  fs.writeFileSync(file, config('    server: https://h:1\n', '    token: t\n'));
  assert.is(loadKubeCredentials({ kubeconfig: file, inCluster: false }).server.href, 'https://h:1/');
  assert.is(refusal(() => loadKubeCredentials({ inCluster: false })).field, 'kubeconfig');
});

// ---- credentials only over verified TLS (issue 11, point 6) --------------------------------------

test('a token, token file or basic auth over http:// is refused, naming the server and why', () => {
  for (const user of ['    token: t0ken\n', '    tokenFile: /dev/null\n', '    username: u\n    password: p4ss\n']) {
    const e = refusal(() => parseKubeconfig(config('    server: http://10.0.0.1:8080\n', user), '/etc/k/config'));
    assert.is(e.field, 'clusters[name=c1].cluster.server');
    assert.match(e.message, /^kubeconfig \/etc\/k\/config: clusters\[name=c1\]\.cluster\.server: http:\/\/10\.0\.0\.1:8080 is plain http: the (token|tokenFile|username and password) of users\[name=u1\]\.user would cross the network/);
    assert.not.match(e.message, /t0ken|p4ss/);
  }
  // anonymous over http (e.g. kubectl proxy on loopback) carries no credential: allowed, marked
  const anon = parseKubeconfig(config('    server: http://127.0.0.1:8001\n', '    token: t\n', ''), '/k', { context: 'other' });
  assert.is(anon.transport, 'plain-http');
  assert.match(anon.transportWarning ?? '', /plain http, anonymous/);
});

test('insecure-skip-tls-verify is marked unverified with a warning naming the field; https with a CA is verified', () => {
  const insecure = parseKubeconfig(config('    server: https://10.0.0.1:6443\n    insecure-skip-tls-verify: true\n', '    token: t\n'), '/etc/k/config');
  assert.is(insecure.transport, 'unverified-tls');
  assert.is(insecure.connection().tls.rejectUnauthorized, false);
  assert.match(insecure.transportWarning ?? '', /^clusters\[name=c1\]\.cluster\.insecure-skip-tls-verify is true: the API server's certificate is not checked, so anyone on the path to https:\/\/10\.0\.0\.1:6443 can pose as it, read the token and forge ShareMemory objects/);
  const verified = parseKubeconfig(config(`    server: https://10.0.0.1:6443\n    certificate-authority-data: ${b64('CA')}\n`, '    token: t\n'), '/etc/k/config');
  assert.is(verified.transport, 'verified');
  assert.is(verified.transportWarning, undefined);
});

test('kubeconfig errors never echo its content; its files must be regular and bounded', () => {
  const dir = tempDir();
  const file = path.join(dir, 'config');
  fs.writeFileSync(file, 'clusters: [{name: c, cluster: {server: "https://h", token: SECRET-TOKEN\n');
  const e = refusal(() => loadKubeconfig(file));
  assert.match(e.message, new RegExp(`^kubeconfig ${file}: not valid YAML at line \\d+, column \\d+: `));
  assert.not.match(e.message, /SECRET/);
  fs.writeFileSync(file, 'current-context: a\ncurrent-context: SECRET-b\n');
  const dup = refusal(() => loadKubeconfig(file));
  assert.is(dup.message, `kubeconfig ${file}: not valid YAML at line 2, column 1: duplicate key (each key may appear once in a mapping)`);
  // the kubeconfig is YAML 1.2 too: a 1.1 header would let merge keys set keys twice
  fs.writeFileSync(file, '%YAML 1.1\n---\ncurrent-context: a\n<<: {current-context: SECRET-b}\n');
  assert.is(refusal(() => loadKubeconfig(file)).message, `kubeconfig ${file}: not valid YAML at line 1, column 1: a %YAML 1.1 directive: only YAML 1.2 is accepted (1.1 turns on merge keys and yes/no booleans)`);
  fs.unlinkSync(file);
  fs.symlinkSync('/proc/kmsg', file);
  assert.match(refusal(() => loadKubeconfig(file)).message, /is on proc, whose files are not data at rest/);
  const tok = path.join(dir, 'tok');
  spawnSync('mkfifo', [tok]);
  const fifo = refusal(() => parseKubeconfig(config('    server: https://h:1\n', '    tokenFile: tok\n'), path.join(dir, 'k2')));
  assert.is(fifo.field, 'users[name=u1].user.tokenFile');
  assert.match(fifo.message, /tok: is a FIFO, not a regular file/);
});

test.run();
