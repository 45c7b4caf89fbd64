// The DRA door's wiring: off by default, and then nothing of it is loaded (no gRPC library, no
// kubelet plugin, no driver), so an NRI-only agent pays nothing for it. Its working is proven end
// to end in test/e2e/dra.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseConfig } from '../../plugin/agent/config';
import { startDraDoor } from '../../plugin/agent/dra-wiring';
import '../../plugin/agent/daemon';

const loaded = (): string[] => Object.keys(require.cache).filter((k) => /@grpc[\\/]grpc-js|kubelet-plugin|[\\/]dra[\\/](driver|slices|claims)\.js$/.test(k));

test('dra.enabled false (the default): no door, and the daemon with its wiring loads no gRPC, kubelet plugin or driver', async () => {
  assert.equal(loaded(), [], 'loading the daemon loads none of the DRA door');
  const { config } = parseConfig({}, 'test');
  assert.is(config.dra.enabled, false);
  // the parts are not used when the door is off: a start with none of them must not touch them
  const door = await startDraDoor(config, {} as Parameters<typeof startDraDoor>[1]);
  assert.is(door, undefined);
  assert.equal(loaded(), [], 'still nothing of it loaded');
});

test.run();
