import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, readFileSync, symlinkSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tempDirs } from '../support/cleanup';
import {
  ConfigError,
  DEFAULT_CONFIG_PATH,
  checkConfig,
  defaultConfig,
  ledgerSyncs,
  loadConfig,
  parseConfig,
} from '../../plugin/agent/config';

// removed after the file's last test
const dir = tempDirs(test, 'memshare-config-')();
function file(name: string, content: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}
const problemsOf = (obj: unknown) => parseConfig(obj, 'test').problems;
const problemsOfConfig = problemsOf;

test('an empty object gives every product default', () => {
  const { config, problems } = parseConfig({}, 'test');
  assert.equal(problems, []);
  assert.equal(config.nri, { socket: '/var/run/nri/nri.sock', name: 'memshare', index: '50' });
  assert.is(config.stateDir, '/var/lib/nri-memshare');
  assert.is(config.sharesDir, '/run/nri-memshare/shares');
  assert.is(config.declarationsDir, '/etc/nri-memshare/shares.d');
  assert.equal(config.backend, { kind: 'local' });
  assert.equal(config.limits, {
    minShareBytes: 128 * 2 ** 20,
    maxShareBytes: 512 * 2 ** 30,
    maxNodeBytes: 512 * 2 ** 30,
    maxNameLength: 47,
  });
  assert.is(config.kubernetes, undefined);
  assert.equal(config.metrics, { address: '127.0.0.1:9464' });
  assert.equal(config.log, { level: 'info' });
  assert.equal(config.ledger, { sync: 'auto' });
});

test('every key can be set', () => {
  const { config, problems } = parseConfig({
    nri: { socket: '/tmp/x/nri.sock', name: 'mem.share-2', index: '07' },
    stateDir: '/tmp/x/state',
    sharesDir: '/tmp/x/shares',
    declarationsDir: '/tmp/x/decl',
    backend: { kind: 'local' },
    limits: { minShareBytes: '1Mi', maxShareBytes: 1073741824, maxNodeBytes: '2Gi', maxNameLength: 20 },
    kubernetes: { kubeconfig: '/etc/kubernetes/kubelet.conf' },
    metrics: { address: '' },
    log: { level: 'debug' },
    ledger: { sync: 'always' },
  }, 'test');
  assert.equal(problems, []);
  assert.is(config.nri.index, '07');
  assert.is(config.nri.name, 'mem.share-2');
  assert.is(config.limits.minShareBytes, 2 ** 20);
  assert.is(config.limits.maxShareBytes, 2 ** 30);
  assert.is(config.limits.maxNodeBytes, 2 * 2 ** 30);
  assert.is(config.limits.maxNameLength, 20);
  assert.equal(config.kubernetes, { kubeconfig: '/etc/kubernetes/kubelet.conf', inCluster: false });
  assert.is(config.metrics.address, '');
  assert.is(config.log.level, 'debug');
  assert.is(config.ledger.sync, 'always');
});

test('records are fdatasynced where the memory outlives the kernel, or when asked', () => {
  const syncs = (obj: unknown) => ledgerSyncs(parseConfig(obj, 'test').config);
  assert.is(syncs({}), false, 'local tmpfs shares end with the kernel: the page cache is enough');
  assert.is(syncs({ backend: { kind: 'ubs' } }), true, 'UB memory borrowed from another node outlives a reboot');
  assert.is(syncs({ ledger: { sync: 'always' } }), true);
  assert.is(syncs({ backend: { kind: 'ubs' }, ledger: { sync: 'never' } }), false);
});

test('the shipped packaging/config.json is valid and equals the defaults', () => {
  const shipped = join(__dirname, '../../../packaging/config.json');
  assert.equal(checkConfig(shipped), []);
  const c = loadConfig(shipped);
  assert.equal(c, defaultConfig());
  assert.ok(JSON.parse(readFileSync(shipped, 'utf8')).nri, 'the shipped file spells the keys out');
});

test('unknown keys are errors naming the key, at every level', () => {
  // a close typo also gets the nearest known key (test/unit/check-config.test.ts)
  const problemsOf = (v: unknown) => problemsOfConfig(v).map((p) => p.replace(/ \(did you mean "[^"]+"\?\)$/, ''));
  assert.equal(problemsOf({ stateDri: '/x' }), ['stateDri: unknown key']);
  assert.equal(problemsOf({ nri: { sock: '/x' } }), ['nri.sock: unknown key']);
  assert.equal(problemsOf({ limits: { maxShare: 5 } }), ['limits.maxShare: unknown key']);
  assert.equal(problemsOf({ metrics: { port: 1 } }), ['metrics.port: unknown key']);
  assert.equal(problemsOf({ log: { format: 'json' } }), ['log.format: unknown key']);
  assert.equal(problemsOf({ ledger: { fsync: true } }), ['ledger.fsync: unknown key']);
  assert.equal(problemsOf({ kubernetes: { inCluster: true, namespace: 'x' } }), ['kubernetes.namespace: unknown key']);
  assert.equal(problemsOf({ backend: { kind: 'local', size: 1 } }), ['backend.size: unknown key']);
});

test('bad values are errors naming the key and the reason', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ nri: { socket: 'nri.sock' } }, /^nri\.socket: must be an absolute path/],
    [{ nri: { name: 'mem share' } }, /^nri\.name: must be non-empty and use only/],
    [{ nri: { name: '' } }, /^nri\.name: /],
    [{ nri: { index: 50 } }, /^nri\.index: must be a string, got number 50/],
    [{ nri: { index: '5' } }, /^nri\.index: must be exactly two digits/],
    [{ nri: { index: '100' } }, /^nri\.index: must be exactly two digits/],
    [{ stateDir: 'var/lib' }, /^stateDir: must be an absolute path/],
    [{ sharesDir: 3 }, /^sharesDir: must be a string/],
    [{ nri: [] }, /^nri: must be an object, got an array/],
    [{ backend: { kind: 'nfs' } }, /^backend\.kind: must be "local" or "ubs", got "nfs"/],
    [{ backend: {} }, /^backend\.kind: must be "local" or "ubs", got nothing/],
    [{ limits: { maxShareBytes: -1 } }, /^limits\.maxShareBytes: must be a positive integer/],
    [{ limits: { maxShareBytes: 1.5 } }, /^limits\.maxShareBytes: must be a positive integer/],
    [{ limits: { maxShareBytes: '12 GB' } }, /^limits\.maxShareBytes: quantity "12 GB": is not a Kubernetes quantity/],
    [{ limits: { minShareBytes: '0' } }, /^limits\.minShareBytes: must be more than 0 bytes/],
    [{ limits: { maxNameLength: 64 } }, /^limits\.maxNameLength: must be an integer from 1 to 63/],
    [{ limits: { minShareBytes: '2Gi', maxShareBytes: '1Gi' } }, /^limits\.minShareBytes: must not exceed limits\.maxShareBytes/],
    [{ limits: { maxShareBytes: '2Ti' } }, /^limits\.maxShareBytes: must not exceed limits\.maxNodeBytes/],
    [{ kubernetes: {} }, /^kubernetes: set kubeconfig \(a path\) or inCluster: true/],
    [{ kubernetes: { kubeconfig: '/k', inCluster: true } }, /^kubernetes: set either kubeconfig or inCluster: true, not both/],
    [{ kubernetes: { inCluster: 'yes' } }, /^kubernetes\.inCluster: must be true or false/],
    [{ kubernetes: { kubeconfig: 'kube.conf' } }, /^kubernetes\.kubeconfig: must be an absolute path/],
    [{ metrics: { address: '9464' } }, /^metrics\.address: must be host:port/],
    [{ log: { level: 'verbose' } }, /^log\.level: must be one of trace, debug, info/],
    [{ ledger: { sync: true } }, /^ledger\.sync: must be a string, got boolean true/],
    [{ ledger: { sync: 'sometimes' } }, /^ledger\.sync: must be one of auto, always, never, got "sometimes"/],
    [{ backend: { kind: 'ubs', sdkLibrary: 'libubsm_sdk.so' } }, /^backend\.sdkLibrary: must be an absolute path/],
    [{ backend: { kind: 'ubs', env: { A: 1 } } }, /^backend\.env: must be an object of string values/],
    [{ backend: { kind: 'ubs', mounts: {} } }, /^backend\.mounts: must be an array/],
  ];
  for (const [obj, re] of cases) {
    const p = problemsOf(obj);
    assert.is(p.length, 1, `${JSON.stringify(obj)} -> ${JSON.stringify(p)}`);
    assert.match(p[0], re, `${JSON.stringify(obj)} -> ${p[0]}`);
  }
  assert.match(problemsOf([1])[0], /must be a JSON object/);
});

test('all problems are listed together', () => {
  const p = problemsOf({ nri: { index: 'x' }, stateDir: 'rel', bogus: 1, limits: { maxNameLength: 0 } });
  assert.is(p.length, 4, JSON.stringify(p));
});

test('kubernetes in-cluster, disabled and null', () => {
  assert.equal(parseConfig({ kubernetes: { inCluster: true } }, 't').config.kubernetes, { inCluster: true });
  const off = parseConfig({ kubernetes: { inCluster: false } }, 't');
  assert.equal(off.problems, []);
  assert.is(off.config.kubernetes, undefined);
  const nul = parseConfig({ kubernetes: null }, 't');
  assert.equal(nul.problems, []);
  assert.is(nul.config.kubernetes, undefined);
});

test('the ubs backend reads its own keys, with the vendor recipe as defaults, and names unknown ones', () => {
  const { config, problems } = parseConfig({
    backend: { kind: 'ubs', sdkLibrary: '/opt/ubs/libubsm_sdk.so', env: { EXTRA: '/x' }, mounts: [], socketDir: '/run/memory', groups: ['ubsmd', 4177] },
  }, 't');
  assert.equal(problems, []);
  assert.is(config.backend.kind, 'ubs');
  if (config.backend.kind !== 'ubs') return;
  assert.is(config.backend.sdkLibrary, '/opt/ubs/libubsm_sdk.so');
  assert.equal(config.backend.env, { HCOM_CONNECTION_RETRY_TIMES: '2', EXTRA: '/x' });
  assert.is(config.backend.socketDir, '/run/memory');
  assert.equal(config.backend.groups, ['ubsmd', 4177]);
  assert.equal(config.backend.sdkDir, { host: '/usr/local/ubs_mem', container: '/host/usr/local/ubs_mem' });
  assert.ok(config.backend.libraries.some((l) => l.container === '/usr/lib64/libobmm.so.1'));
  assert.is(config.backend.region, 'default');
  assert.is(config.backend.budgetMs, 1000);
  const bad = parseConfig({ backend: { kind: 'ubs', extra: { a: 1 }, budgetMs: 5, shareMode: 660, libraries: ['lib.so'] } }, 't').problems;
  assert.ok(bad.includes('backend.extra: unknown key'), bad.join('; '));
  assert.ok(bad.some((p) => p.startsWith('backend.budgetMs: must be an integer from 50')), bad.join('; '));
  assert.ok(bad.some((p) => p.startsWith('backend.shareMode: must be an octal mode')), bad.join('; '));
  assert.ok(bad.some((p) => p.startsWith('backend.libraries[0]: must be an absolute path')), bad.join('; '));
  // the holder keys: defaults, and a bad value named by its key
  assert.is(config.backend.holder, true);
  assert.is(config.backend.staleGraceSeconds, 600);
  const bad2 = parseConfig({ backend: { kind: 'ubs', holder: 'yes', staleGraceSeconds: -1 } }, 't').problems;
  assert.ok(bad2.some((p) => p.startsWith('backend.holder: ')), bad2.join('; '));
  assert.ok(bad2.some((p) => p.startsWith('backend.staleGraceSeconds: must be an integer from 0')), bad2.join('; '));
});

test('issue 22.9: a UB config that can only be a mistake or an escalation is refused, each input by its key and the reason (run and check-config read it alike)', () => {
  {
    const fifo = join(dir, 'ubs-config-devices');
    spawnSync('mkfifo', [fifo]);
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ mounts: [{ source: '/opt/../etc', destination: '/etc/x' }] }, 'backend.mounts[0]', /source must be an absolute path without "\.\."/],
      [{ mounts: [{ source: '/opt/x', destination: '/x', options: ['rw', 'rshared', 'suid', 'dev', 'exec'] }] }, 'backend.mounts[0]', /options "rshared", "suid", "dev", "exec" are not allowed/],
      [{ mounts: [{ source: '/opt/x', destination: '/' }] }, 'backend.mounts[0]', /destination must not be "\/"/],
      [{ sdkDir: { host: '/usr/local/ubs_mem', container: '/' } }, 'backend.sdkDir', /must not be "\/": the mount would cover the container's whole root/],
      [{ env: { LD_PRELOAD: '/tmp/evil.so' } }, 'backend.env', /"LD_PRELOAD": the dynamic loader's variables/],
      [{ env: { GOOD: 'a\u0000b' } }, 'backend.env', /"GOOD": its value holds a NUL character/],
      [{ env: { MEMSHARE_UBS_SHARES: 'x=y' } }, 'backend.env', /"MEMSHARE_UBS_SHARES": MEMSHARE_\* variables .* are the agent's own/],
      [{ groups: [0] }, 'backend.groups', /must not name group 0 \(root\)/],
      [{ groups: ['ubsmd', 'root'] }, 'backend.groups', /must not name group 0 \(root\)/],
      [{ hostDeviceMode: '0666' }, 'backend.hostDeviceMode', /must grant nothing to group and others .* got "0666"/],
      [{ procDevices: fifo }, 'backend.procDevices', /is not a regular file/],
    ];
    for (const [backend, key, why] of cases) {
      const problems = parseConfig({ backend: { kind: 'ubs', ...backend } }, 't').problems;
      const p = problems.find((x) => x.startsWith(`${key}: `));
      assert.ok(p, `${JSON.stringify(backend)}: no problem for ${key} in ${JSON.stringify(problems)}`);
      assert.match(p!, why);
    }
    // what stays allowed: the vendor's recipe, a writable mount of the operator's choosing, 0600/0400 host nodes
    const ok = parseConfig({ backend: { kind: 'ubs', mounts: [{ source: '/opt/x', destination: '/x', options: ['rbind', 'rprivate', 'rw', 'nosuid', 'nodev', 'noexec'] }], env: { HCOM_X: '1' }, groups: ['ubsmd', 4177], hostDeviceMode: '0400' } }, 't');
    assert.equal(ok.problems, []);
  }
});

test('loadConfig reads a file and throws ConfigError listing every problem', () => {
  const good = file('good.json', { stateDir: '/tmp/s', metrics: { address: '127.0.0.1:0' } });
  assert.is(loadConfig(good).stateDir, '/tmp/s');
  const bad = file('bad.json', { stateDir: 'rel', nri: { index: '1' } });
  try {
    loadConfig(bad);
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.instance(err, ConfigError);
    const e = err as ConfigError;
    assert.is(e.problems.length, 2);
    assert.ok(e.message.includes(bad));
    assert.ok(e.message.includes('stateDir: must be an absolute path'));
    assert.ok(e.message.includes('nri.index: must be exactly two digits'));
  }
});

test('checkConfig reports unreadable and malformed files', () => {
  assert.match(checkConfig(join(dir, 'absent.json'))[0], /cannot read .*absent\.json: no such file/);
  assert.match(checkConfig(file('broken.json', '{"nri": '))[0], /broken\.json is not valid JSON/);
  assert.equal(checkConfig(file('empty-object.json', '{}')), []);
  assert.throws(() => loadConfig(join(dir, 'absent.json')), /no such file/);
});

test('sharesDir and stateDir may not be system directories, kernel filesystems, or nested in each other', () => {
  for (const [key, value, why] of [
    ['sharesDir', '/sys', 'inside /sys, a kernel filesystem'],
    ['sharesDir', '/sys/fs/cgroup', 'inside /sys, a kernel filesystem'],
    ['sharesDir', '/proc', 'inside /proc, a kernel filesystem'],
    ['sharesDir', '/dev/shm', 'inside /dev, a kernel filesystem'],
    ['sharesDir', '/', 'is a system directory'],
    ['sharesDir', '/run', 'is a system directory'],
    ['sharesDir', '/run/', 'is a system directory'],
    ['sharesDir', '/tmp', 'is a system directory'],
    ['sharesDir', '/var/lib/../lib', 'is a system directory'],
    ['stateDir', '/etc', 'is a system directory'],
    ['stateDir', '/usr', 'is a system directory'],
    ['stateDir', '/var', 'is a system directory'],
    ['stateDir', '/boot', 'is a system directory'],
  ] as const) {
    const problems = problemsOf({ [key]: value });
    assert.is(problems.length, 1, `${key}=${value}: ${problems.join('; ')}`);
    assert.ok(problems[0].startsWith(`${key}: "${value}"`), problems[0]);
    assert.match(problems[0], why);
  }
  // a symlink to a system directory is that directory (Debian: /var/run -> /run)
  const link = join(dir, 'run-link');
  symlinkSync('/run', link);
  assert.match(problemsOf({ sharesDir: link })[0], `sharesDir: "${link}" (/run) is a system directory`);
  // nested either way, or the same directory
  assert.equal(problemsOf({ stateDir: '/srv/ms', sharesDir: '/srv/ms/shares' }), [
    'sharesDir: "/srv/ms/shares" is inside stateDir "/srv/ms"; they must be separate, neither inside the other',
  ]);
  assert.equal(problemsOf({ stateDir: '/srv/ms/shares/state', sharesDir: '/srv/ms/shares' }), [
    'stateDir: "/srv/ms/shares/state" is inside sharesDir "/srv/ms/shares"; they must be separate, neither inside the other',
  ]);
  assert.match(problemsOf({ stateDir: '/srv/ms', sharesDir: '/srv/ms/' })[0], 'sharesDir: "/srv/ms/" is the same directory as stateDir "/srv/ms"');
  // siblings and directories below system directories are fine
  assert.equal(problemsOf({ stateDir: '/srv/ms-state', sharesDir: '/srv/ms' }), []);
  assert.equal(problemsOf({ stateDir: '/var/lib/x', sharesDir: '/run/x/shares' }), []);
  assert.equal(problemsOf({ stateDir: '/tmp/a/state', sharesDir: '/tmp/a/shares' }), []);
  // check-config reports it, naming the key
  const bad = file('sys-shares.json', { sharesDir: '/sys', stateDir: '/etc' });
  const found = checkConfig(bad);
  assert.is(found.length, 2, found.join('; '));
  assert.match(found[0], /^sharesDir: "\/sys" is inside \/sys/);
  assert.match(found[1], /^stateDir: "\/etc" is a system directory/);
  assert.throws(() => loadConfig(bad), /sharesDir: "\/sys"/);
});

test('a missing default config file means all defaults', () => {
  let exists = true;
  try {
    readFileSync(DEFAULT_CONFIG_PATH);
  } catch {
    exists = false;
  }
  if (exists) {
    console.log(`NOTE: ${DEFAULT_CONFIG_PATH} exists on this machine; checking only that it loads`);
    assert.ok(loadConfig().nri.socket);
    return;
  }
  assert.equal(loadConfig(), defaultConfig());
  assert.equal(checkConfig(), []);
});

// ---- errors never echo the file (issue 11, point 8); only regular files are read ------------------
test('a config that is not JSON is reported by line and column, never by its content', () => {
  const shadowLike = file('shadow-like.json', 'root:$6$SECRET-HASH:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n');
  const p = checkConfig(shadowLike);
  assert.equal(p, [`${shadowLike} is not valid JSON: line 1, column 1: expected a value, found a letter`]);
  const later = checkConfig(file('later.json', '{"log": {"level": "info"},\n  "SECRET": oops}'));
  assert.match(later[0], /later\.json is not valid JSON: line 2, column 13: expected a value, found a letter$/);
  assert.equal(checkConfig(file('dup.json', '{"log": {"level": "info"}, "log": {"level": "SECRET"}}')).map((x) => x.replace(dir, 'DIR')), [
    'DIR/dup.json is not valid JSON: line 1, column 28: duplicate key (each key may appear once in an object)',
  ]);
  for (const m of [...p, ...later]) assert.not.match(m, /SECRET|root:/);
  try {
    readFileSync('/etc/shadow');
    for (const m of checkConfig('/etc/shadow')) assert.not.match(m, /root:|\$|:\d+:/, m);
  } catch {
    // no /etc/shadow here (or not readable): the shadow-like file above stands in for it
  }
});

test('a config link to /proc/kmsg or a FIFO is refused without blocking', () => {
  const kmsg = join(dir, 'kmsg.json');
  symlinkSync('/proc/kmsg', kmsg);
  assert.match(checkConfig(kmsg)[0], /kmsg\.json: .*is on proc/);
  const fifo = join(dir, 'fifo.json');
  assert.is(spawnSync('mkfifo', [fifo]).status, 0);
  assert.match(checkConfig(fifo)[0], /fifo\.json: .*is a FIFO, not a regular file/);
});


test.run();

test('dra: off by default, every key can be set, pluginDir follows driverName', () => {
  assert.equal(parseConfig({}, 'test').config.dra, {
    enabled: false,
    driverName: 'memshare.nri.io',
    registryDir: '/var/lib/kubelet/plugins_registry',
    pluginDir: '/var/lib/kubelet/plugins/memshare.nri.io',
    cdiDir: '/var/run/cdi',
    ubPool: 'default',
  });
  const kube = { kubeconfig: '/etc/kubernetes/kubelet.conf' };
  let r = parseConfig({ kubernetes: kube, dra: { enabled: true, driverName: 'shm.example.com' } }, 'test');
  assert.equal(r.problems, []);
  assert.equal(r.config.dra, { enabled: true, driverName: 'shm.example.com', registryDir: '/var/lib/kubelet/plugins_registry', pluginDir: '/var/lib/kubelet/plugins/shm.example.com', cdiDir: '/var/run/cdi', ubPool: 'default' });
  r = parseConfig({ kubernetes: kube, dra: { enabled: true, registryDir: '/tmp/r', pluginDir: '/tmp/p', cdiDir: '/tmp/c', ubPool: 'rack-7' } }, 'test');
  assert.equal(r.problems, []);
  assert.equal([r.config.dra.registryDir, r.config.dra.pluginDir, r.config.dra.cdiDir, r.config.dra.ubPool], ['/tmp/r', '/tmp/p', '/tmp/c', 'rack-7']);
});

test('dra: bad values are errors naming the key; enabled without the API server names both keys', () => {
  const kube = { kubeconfig: '/etc/kubernetes/kubelet.conf' };
  const cases: Array<[unknown, RegExp]> = [
    [{ dra: { enabled: 'yes' } }, /^dra\.enabled: must be true or false, got "yes"$/],
    [{ dra: { driverName: 'Memshare' } }, /^dra\.driverName: must be a DRA driver name: a lowercase DNS subdomain of at most 63 characters/],
    [{ dra: { driverName: `${'a'.repeat(60)}.com` } }, /^dra\.driverName: must be a DRA driver name/],
    [{ dra: { driverName: '' } }, /^dra\.driverName: /],
    [{ dra: { registryDir: 'plugins_registry' } }, /^dra\.registryDir: must be an absolute path/],
    [{ dra: { pluginDir: 3 } }, /^dra\.pluginDir: must be a string/],
    [{ dra: { cdiDir: 'cdi' } }, /^dra\.cdiDir: must be an absolute path/],
    [{ dra: { pluginDir: `/${'p'.repeat(100)}` } }, /^dra\.pluginDir: the socket "\/p+\/dra\.sock" would be 110 bytes long; a unix socket path has at most 107$/],
    [{ dra: { registryDir: `/${'r'.repeat(90)}` } }, /^dra\.registryDir: the socket .*memshare\.nri\.io-reg\.sock" would be \d+ bytes long/],
    [{ dra: { socket: '/x' } }, /^dra\.socket: unknown key/],
    [{ dra: { ubPool: 'Pool_1' } }, /^dra\.ubPool: "Pool_1" is not a DNS-1123 label/],
    [{ dra: { ubPool: '' } }, /^dra\.ubPool: /],
    [{ dra: true }, /^dra: must be an object/],
    [{ dra: { enabled: true }, kubernetes: null }, /^dra\.enabled: DRA reads ResourceClaims from the API server/],
  ];
  for (const [obj, re] of cases) {
    const problems = problemsOf({ kubernetes: kube, ...(obj as object) });
    assert.is(problems.length, 1, `${JSON.stringify(obj)}: ${JSON.stringify(problems)}`);
    assert.match(problems[0], re, JSON.stringify(obj));
  }
  assert.equal(problemsOf({ dra: { enabled: true } }), ['dra.enabled: DRA reads ResourceClaims from the API server: set kubernetes.kubeconfig or kubernetes.inCluster too']);
  // a kubernetes section that is there but bad has its own problem: not a second one for dra
  const bad = problemsOf({ kubernetes: {}, dra: { enabled: true } });
  assert.equal(bad.length, 1, JSON.stringify(bad));
  assert.match(bad[0], /^kubernetes: /);
  // off, nothing needs the API server
  assert.equal(problemsOf({ dra: { enabled: false } }), []);
  assert.throws(() => loadConfig(file('dra-alone.json', { dra: { enabled: true } })), (e: unknown) => e instanceof ConfigError && /dra\.enabled: .*kubernetes\.kubeconfig or kubernetes\.inCluster/.test(e.message));
});
