// The once-a-minute warning: the first always, then at most one per interval.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Throttle } from '../../plugin/log/throttle';

test('the first is allowed, repeats within the interval are not, the next after it is', () => {
  let now = 0;
  const t = new Throttle(60_000, () => now);
  assert.is(t.allow(), true, 'first, even at time 0');
  now = 59_999;
  assert.is(t.allow(), false);
  now = 60_000;
  assert.is(t.allow(), true);
  now = 60_001;
  assert.is(t.allow(), false);
});

test.run();
