#!/usr/bin/env node
// Bundles the compiled agent (dist/plugin/cli.js, tsc's output) into dist/agent/nri-memshare.js,
// the one file the RPM's launcher runs, and the declarations parse worker beside it. Why: node
// resolves, reads and compiles ~100 modules at start, and that is most of the agent's start-up
// and some of its RSS (docs/performance.md has the figures). Run by `npm run build`, after tsc.
//
// Left outside the bundle, loaded from node_modules as before:
// - koffi: a native addon (.node files per arch);
// - yaml: 250 KB that only a node with YAML declarations ever loads (plugin/declarations/parse.ts).
// - @grpc/grpc-js: bundled on its own into dist/agent/grpc-js.js, which the bundle requires from
//   beside itself; only the DRA front door loads it (plugin/kubelet-plugin/grpc.ts), so an NRI-only
//   agent neither reads nor parses it.
// `assert` (pino's) is aliased to scripts/bundle-assert.js: see there why. grpc-js's optional
// `@grpc/proto-loader` (needed only to serve channelz or ORCA, which the agent does not) is aliased to
// scripts/bundle-no-proto-loader.js, so protobufjs and its kin stay out of the package.
// Not minified: stack traces in the journal keep the project's function names.
'use strict';
const { build } = require('esbuild');
const { join } = require('node:path');
const { chmodSync, writeFileSync } = require('node:fs');

const root = join(__dirname, '..');
const outdir = join(root, 'dist', 'agent');

// `require('@grpc/grpc-js')` in the agent's code becomes `require('./grpc-js.js')`: the entry point
// of that name, resolved by node from the bundle's own directory
const grpcBeside = {
  name: 'grpc-beside',
  setup(b) {
    b.onResolve({ filter: /^@grpc\/grpc-js$/ }, (args) => (args.kind === 'entry-point' ? undefined : { path: './grpc-js.js', external: true }));
  },
};

build({
  absWorkingDir: root,
  entryPoints: {
    'nri-memshare': 'dist/plugin/cli.js',
    // directory.ts starts it as join(__dirname, 'parse-worker.js'): the bundle's own directory
    'parse-worker': 'dist/plugin/declarations/parse-worker.js',
    // the UB holder: holder/client.ts starts it as join(__dirname, 'ubs-holder.js')
    'ubs-holder': 'dist/plugin/backends/ubs/holder/ubs-holder.js',
    // the gRPC library of the DRA front door, a file of its own (see above)
    'grpc-js': '@grpc/grpc-js',
  },
  outdir,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  external: ['koffi', 'yaml'],
  alias: { assert: './scripts/bundle-assert.js', '@grpc/proto-loader': './scripts/bundle-no-proto-loader.js' },
  plugins: [grpcBeside],
  legalComments: 'none',
  logLevel: 'warning',
  // which npm packages went into the bundle: scripts/bundled-packages.js reads it for the RPM's
  // License tag, license texts and bundled() Provides
  metafile: true,
}).then((result) => {
  writeFileSync(join(outdir, 'meta.json'), JSON.stringify(result.metafile));
  // package.json's bin: runnable as it is (its first line is cli.ts's #!/usr/bin/env node)
  chmodSync(join(outdir, 'nri-memshare.js'), 0o755);
}).catch((err) => {
  console.error(`bundle: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
