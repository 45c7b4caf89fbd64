// node:assert as the bundle's dependencies see it (scripts/bundle.js aliases `assert` here).
// sonic-boom and thread-stream (pino's) load node:assert at start for a few `assert(cond, msg)`
// checks, and node:assert's load makes process.stderr (its colour check): ~15 ms of the agent's
// start-up. The call form is checked here; a failing check, and any other use, goes to node:assert.
'use strict';
const real = () => require('node:assert');
function assert(value, message) {
  if (!value) real().ok(value, message);
}
module.exports = new Proxy(assert, {
  get: (target, key) => (key in target ? target[key] : real()[key]),
});
