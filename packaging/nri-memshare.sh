#!/bin/sh
# /usr/bin/nri-memshare: runs the agent's CLI with the system's node (nodejs >= 20).
# NRI_MEMSHARE_NODE overrides the interpreter, e.g. for a node outside /usr/bin.
exec "${NRI_MEMSHARE_NODE:-/usr/bin/node}" /usr/lib/nri-memshare/dist/plugin/cli.js "$@"
