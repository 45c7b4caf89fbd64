// The logger built from config.log: JSON lines, level names, and the configured threshold.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Writable } from 'node:stream';
import { createLogger } from '../../plugin/agent/logger';
import { parseConfig } from '../../plugin/agent/config';

function capture(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { stream, lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

test('one JSON object per line with a level name, time and message', () => {
  const c = capture();
  const log = createLogger({ level: 'info', destination: c.stream });
  log.info({ share: 'team-a/demo' }, 'bound');
  const [line] = c.lines();
  assert.is(line.level, 'info');
  assert.is(line.msg, 'bound');
  assert.is(line.share, 'team-a/demo');
  assert.is(line.name, 'nri-memshare');
  assert.match(String(line.time), /^\d{4}-\d\d-\d\dT/);
  assert.is(line.pid, undefined, 'journald records the pid itself');
});

test('the level from config.log.level filters lower levels', () => {
  const { config, problems } = parseConfig({ log: { level: 'warn' } }, 'test');
  assert.equal(problems, []);
  const c = capture();
  const log = createLogger({ level: config.log.level, destination: c.stream });
  log.info('hidden');
  log.warn('shown');
  log.error({ err: new Error('boom') }, 'failed');
  const lines = c.lines();
  assert.equal(lines.map((l) => l.msg), ['shown', 'failed']);
  assert.match(JSON.stringify(lines[1].err), /boom/);
});

test('silent logs nothing', () => {
  const c = capture();
  createLogger({ level: 'silent', destination: c.stream }).error('nothing');
  assert.equal(c.lines(), []);
});

test.run();
