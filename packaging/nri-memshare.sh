#!/bin/sh
# /usr/bin/nri-memshare: runs the agent's CLI (one bundled file) with the system's node (nodejs >= 20).
# NRI_MEMSHARE_NODE overrides the interpreter, e.g. for a node outside /usr/bin.
# a 1 MiB young generation: the agent allocates little per event, and the default 16 MiB costs RSS;
# a 128 MiB old generation (steady state uses about 10): V8 sizes its heap growth by the limit, and
# this one keeps RSS after 10,000 events 11 MB lower at the same latency (docs/performance.md)
exec "${NRI_MEMSHARE_NODE:-/usr/bin/node}" --max-semi-space-size=1 --max-old-space-size=128 /usr/lib/nri-memshare/dist/agent/nri-memshare.js "$@"
