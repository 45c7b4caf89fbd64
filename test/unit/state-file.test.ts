// The agent's state files (failed evictions, agent state, the UB CDI spec) are replaced through
// one writer: atomically, and through a temp file created exclusively under a random name, so a
// symbolic link planted at a temp name the agent would once have used ("<file>.tmp-<pid>") is
// never followed (issue 22.5): the file it points at stays as it was.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDirs } from '../support/cleanup';
import { readStateFile, removeStateFile, writeStateFile } from '../../plugin/files/state-file';
import { writeCdiSpec, CDI_SPEC_FILE } from '../../plugin/backends/ubs/cdi';
import { writeAgentState, AGENT_STATE_FILE, type AgentState } from '../../plugin/agent/agent-state';
import { writeFailedEvictions, FAILED_EVICTIONS_FILE } from '../../plugin/agent/failed-evictions';

const test = suite('state files');
const tmp = tempDirs(test, 'memshare-state-file-');

const agentState: AgentState = {
  version: 1, pid: process.pid, pidStartTicks: '1', agentVersion: '0', startedAt: 'a', updatedAt: 'b', lifecycle: 'running',
  nri: { socket: '/s', state: 'connecting', registeredSince: null, runtime: null, lastError: null },
  declarations: [], pendingReleases: 0, failedEvictions: 0, metricsAddress: null,
};

const writers: Array<{ what: string; file: string; write: (dir: string) => void }> = [
  { what: 'the CDI spec', file: CDI_SPEC_FILE, write: (dir) => writeCdiSpec(dir, [990]) },
  { what: 'the agent state', file: AGENT_STATE_FILE, write: (dir) => writeAgentState(dir, agentState) },
  {
    what: 'the failed evictions', file: FAILED_EVICTIONS_FILE,
    write: (dir) => writeFailedEvictions(dir, [{ containerId: 'c', pid: 1, attempts: 1, lastError: 'e', since: 's', retrying: true }]),
  },
];

for (const w of writers) {
  test(`${w.what}: a symbolic link planted at the old predictable temp name is not followed`, () => {
    const dir = tmp();
    const victim = join(tmp(), 'victim');
    writeFileSync(victim, 'untouched\n');
    symlinkSync(victim, join(dir, `${w.file}.tmp-${process.pid}`));
    w.write(dir);
    assert.is(readFileSync(victim, 'utf8'), 'untouched\n', 'the linked file was written through');
    const st = lstatSync(join(dir, w.file));
    assert.ok(st.isFile(), `${w.file} is a regular file, not the planted link`);
    assert.ok(JSON.parse(readFileSync(join(dir, w.file), 'utf8')));
    // only the target and the planted link: no temp file left behind
    assert.equal(readdirSync(dir).sort(), [w.file, `${w.file}.tmp-${process.pid}`].sort());
  });
}

test('writeStateFile: replaces the file whole with the mode asked, leaves no temp file', () => {
  const dir = tmp();
  const path = join(dir, 'x.json');
  writeStateFile(path, 'one\n', { mode: 0o600 });
  writeStateFile(path, 'two\n', { mode: 0o600, durable: true });
  assert.is(readFileSync(path, 'utf8'), 'two\n');
  assert.is(statSync(path).mode & 0o777, 0o600);
  assert.equal(readdirSync(dir), ['x.json']);
});

test('writeStateFile: a failed rename removes its temp file and throws', () => {
  const dir = tmp();
  const path = join(dir, 'd');
  mkdirSync(join(path, 'busy'), { recursive: true }); // a non-empty directory cannot be renamed over
  assert.throws(() => writeStateFile(path, 'x', { mode: 0o600 }), /EISDIR|ENOTEMPTY|EEXIST/);
  assert.equal(readdirSync(dir), ['d']);
});

test('readStateFile: undefined when there is no file, the text when there is, a throw otherwise', () => {
  const dir = tmp();
  assert.is(readStateFile(join(dir, 'none')), undefined);
  writeFileSync(join(dir, 'f'), 'text');
  assert.is(readStateFile(join(dir, 'f')), 'text');
  assert.throws(() => readStateFile(dir), /EISDIR/);
  removeStateFile(join(dir, 'f'));
  removeStateFile(join(dir, 'f')); // nothing there: fine
  assert.is(readStateFile(join(dir, 'f')), undefined);
});

test.run();
