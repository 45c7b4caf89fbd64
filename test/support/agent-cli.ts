// The agent the tests start: the one bundled file the RPM ships (dist/agent/nri-memshare.js, made
// by scripts/bundle.js in `npm run build`), so the suite checks what runs on a node.
import { join } from 'node:path';

export const AGENT_CLI = join(__dirname, '..', '..', 'agent', 'nri-memshare.js');
