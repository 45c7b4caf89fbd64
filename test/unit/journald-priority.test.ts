// journald priorities: under systemd (stdout is the stream JOURNAL_STREAM names) every log line
// starts with the sd-daemon prefix of its level, so journald files it at that priority; no field
// appears twice in a line; a failed start is a log line like every other.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import { createLogger, isJournalStream, syslogPriority } from '../../plugin/agent/logger';
import { AGENT_CLI } from '../support/agent-cli';
import { EXIT_CONFIG } from '../../plugin/agent/config';
import { tempDirs } from '../support/cleanup';
const tempDir = tempDirs(test, 'memshare-journal-');

const CLI = AGENT_CLI;
const LOGGER = join(__dirname, '..', '..', 'plugin', 'agent', 'logger.js');

function capture(): { stream: Writable; raw: () => string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { stream, raw: () => chunks.join('').split('\n').filter(Boolean) };
}

/** Splits "<N>{json}" into N and the object; YAML's parser (a JSON superset) refuses a key given twice. */
function frame(line: string): { priority: number | undefined; obj: Record<string, unknown> } {
  const m = /^<([0-7])>(.*)$/.exec(line);
  const body = m ? m[2] : line;
  return { priority: m ? Number(m[1]) : undefined, obj: parseYaml(body, { uniqueKeys: true }) as Record<string, unknown> };
}

test('each level gets its syslog priority as a "<N>" prefix', () => {
  const c = capture();
  const log = createLogger({ level: 'trace', destination: c.stream, journal: true });
  log.trace('t');
  log.debug('d');
  log.info('i');
  log.warn('w');
  log.error('e');
  log.fatal('f');
  const got = c.raw().map(frame).map((f) => [f.obj.msg, f.obj.level, f.priority]);
  assert.equal(got, [
    ['t', 'trace', 7], ['d', 'debug', 7], ['i', 'info', 6], ['w', 'warn', 4], ['e', 'error', 3], ['f', 'fatal', 2],
  ]);
  assert.is(syslogPriority(45), 4, 'a custom level between warn and error is still at least a warning');
});

test('without the journal the lines are plain JSON', () => {
  const c = capture();
  createLogger({ level: 'info', destination: c.stream, journal: false }).warn('plain');
  const [line] = c.raw();
  assert.ok(line.startsWith('{"level":"warn"'), line);
});

test('no field appears twice: a caller field named like a line field is renamed', () => {
  const c = capture();
  const log = createLogger({ level: 'info', destination: c.stream, journal: true });
  log.info({ name: 'memshare', index: '50', level: 3, time: 5, msg: 'inner' }, 'nri: registered');
  log.child({ name: 'child', share: 'a/b' }).warn({ name: 'again', share: 'c/d' }, 'from a child');
  const [a, b] = c.raw().map(frame); // frame() throws on a duplicate key
  assert.equal(a.obj, {
    level: 'info', name: 'nri-memshare', time: a.obj.time, name_: 'memshare', index: '50', level_: 3, time_: 5, msg_: 'inner', msg: 'nri: registered',
  });
  assert.is(b.obj.name, 'nri-memshare');
  assert.equal([b.obj.share, b.obj.share_, b.obj.name_, b.obj.name__], ['a/b', 'c/d', 'child', 'again']);
  assert.is(b.priority, 4);
  // the check above is not vacuous: the parser does refuse a key given twice
  assert.throws(() => frame('{"name":"a","name":"b"}'), /[Uu]nique|duplicate|Map keys/);
});

test('JOURNAL_STREAM is honoured only when it names stdout', () => {
  const dir = tempDir();
  const out = join(dir, 'stdout');
  writeFileSync(out, '');
  const st = statSync(out, { bigint: true });
  const script = `const { createLogger } = require(${JSON.stringify(LOGGER)}); createLogger({ level: 'info' }).warn('hello');`;
  const run = (journalStream: string | undefined): string => {
    writeFileSync(out, '');
    const fd = openSync(out, 'a');
    try {
      const env = { ...process.env };
      delete env.JOURNAL_STREAM;
      if (journalStream !== undefined) env.JOURNAL_STREAM = journalStream;
      const r = spawnSync(process.execPath, ['-e', script], { stdio: ['ignore', fd, 'pipe'], env, encoding: 'utf8' });
      assert.is(r.status, 0, r.stderr);
    } finally {
      closeSync(fd);
    }
    return readFileSync(out, 'utf8');
  };
  assert.match(run(`${st.dev}:${st.ino}`), /^<4>\{"level":"warn"/);
  assert.match(run(`${st.dev}:${st.ino + 1n}`), /^\{"level":"warn"/, 'another stream: stdout was redirected');
  assert.match(run(undefined), /^\{"level":"warn"/);
  assert.is(isJournalStream({ JOURNAL_STREAM: 'garbage' }), false);
});

test('a failed start is a fatal log line on stdout with priority 2, nothing on stderr', () => {
  const dir = tempDir();
  const out = join(dir, 'stdout');
  writeFileSync(out, '');
  const st = statSync(out, { bigint: true });
  const fd = openSync(out, 'a');
  let r;
  try {
    r = spawnSync(process.execPath, [CLI, 'run', '--config', join(dir, 'missing.json')], {
      stdio: ['ignore', fd, 'pipe'], encoding: 'utf8', env: { ...process.env, JOURNAL_STREAM: `${st.dev}:${st.ino}` },
    });
  } finally {
    closeSync(fd);
  }
  assert.is(r.status, EXIT_CONFIG, 'a refused config: the status systemd does not restart on');
  assert.is(r.stderr, '');
  const lines = readFileSync(out, 'utf8').split('\n').filter(Boolean);
  assert.is(lines.length, 1, lines.join('\n'));
  const f = frame(lines[0]);
  assert.is(f.priority, 2);
  assert.is(f.obj.level, 'fatal');
  assert.match(String(f.obj.msg), /^start failed: config .*missing\.json: cannot read/);
});

test.run();
