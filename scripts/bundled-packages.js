#!/usr/bin/env node
// What npm packages the RPM ships, from the build itself rather than a hand-kept list: the packages
// esbuild put into the bundle (dist/agent/meta.json, written by scripts/bundle.js) and the ones it
// left outside (the bundle's external imports) with their dependencies, each with its version and
// license from package-lock.json and its license files from node_modules.
//
// usage: node scripts/bundled-packages.js COMMAND
//   list                JSON: [{ name, version, license, path, how: "bundled"|"module", licenseFiles }]
//   provides            one "Provides: bundled(npm(NAME)) = VERSION" line per package
//   license             the SPDX expression for the RPM's License tag (the project's and every package's)
//   runtime-modules     the node_modules directories the package ships (the externals' closure)
//   closure NAME...     the lockfile paths of NAMEs and everything they depend on that is installed
//                       (scripts/make-tarball.sh: what the vendored dependency tarball holds)
//   install-licenses D  copies each package's license files to D/NAME/
//   check SPEC          fails (exit 1, naming the difference) unless SPEC's License tag and
//                       bundled() Provides are exactly what this build ships
// Dependencies only: node's own modules. Runs in the RPM's %build and %install (no npm there).
'use strict';
const { readFileSync, readdirSync, mkdirSync, copyFileSync, existsSync } = require('node:fs');
const { join, posix } = require('node:path');
const { builtinModules } = require('node:module');

const root = join(__dirname, '..');

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    fail(`cannot read ${file}: ${e.message}`);
  }
}

function fail(message) {
  process.stderr.write(`bundled-packages: ${message}\n`);
  process.exit(1);
}

const lock = readJson(join(root, 'package-lock.json')).packages;
const project = readJson(join(root, 'package.json'));
const meta = readJson(join(root, 'dist', 'agent', 'meta.json'));

/** "node_modules/a/node_modules/b/lib/x.js" -> "node_modules/a/node_modules/b" (the lockfile's key). */
function packagePath(file) {
  const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)(?:\/|$)/.exec(file);
  return m ? m[1] : undefined;
}

/** Node's lookup from a package directory: its own node_modules, then each parent's. */
function resolveFrom(fromPath, name) {
  let dir = fromPath;
  for (;;) {
    const candidate = dir ? `${dir}/node_modules/${name}` : `node_modules/${name}`;
    if (lock[candidate]) return candidate;
    if (!dir) return undefined;
    const up = dir.lastIndexOf('/node_modules/');
    dir = up < 0 ? '' : dir.slice(0, up);
  }
}

function entry(path, how) {
  const l = lock[path];
  if (!l) fail(`${path} is not in package-lock.json (run npm ci)`);
  if (l.dev) fail(`${path} is a devDependency in package-lock.json but the agent ships it`);
  const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
  if (!l.license) fail(`${name} has no license in package-lock.json`);
  const dir = join(root, path);
  const licenseFiles = existsSync(dir) ? readdirSync(dir).filter((f) => /^(licen[cs]e|copying|notice)/i.test(f)).sort() : [];
  if (licenseFiles.length === 0) fail(`${name} (${dir}) ships no license file`);
  return { name, version: l.version, license: l.license, path, how, licenseFiles };
}

function packages() {
  const found = new Map();
  for (const file of Object.keys(meta.inputs)) {
    const p = packagePath(file);
    if (p && !found.has(p)) found.set(p, 'bundled');
  }
  // the externals (koffi, yaml) and, transitively, what they depend on
  const queue = [];
  for (const out of Object.values(meta.outputs)) {
    for (const imp of out.imports ?? []) {
      // './grpc-js.js': another output of this bundle, not a package
      if (!imp.external || imp.path.startsWith('node:') || imp.path.startsWith('./') || builtinModules.includes(imp.path)) continue;
      const name = imp.path.startsWith('@') ? imp.path.split('/').slice(0, 2).join('/') : imp.path.split('/')[0];
      const p = resolveFrom('', name);
      if (!p) fail(`the bundle imports ${name}, which package-lock.json does not hold`);
      queue.push(p);
    }
  }
  while (queue.length > 0) {
    const p = queue.shift();
    if (found.get(p) === 'module') continue;
    found.set(p, 'module');
    const deps = { ...(lock[p].dependencies ?? {}), ...(lock[p].optionalDependencies ?? {}) };
    for (const d of Object.keys(deps)) {
      const q = resolveFrom(p, d);
      if (q) queue.push(q);
      else if (!(lock[p].optionalDependencies ?? {})[d]) fail(`${p} depends on ${d}, which package-lock.json does not hold`);
    }
  }
  return [...found].map(([p, how]) => entry(p, how)).sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));
}

function provides(list) {
  return list.map((p) => `Provides: bundled(npm(${p.name})) = ${p.version}`);
}

function licenseExpression(list) {
  const ids = new Set([project.license]);
  for (const p of list) {
    // "(MIT OR Apache-2.0)" and the like stay whole, in parentheses
    ids.add(/\s/.test(p.license) && !/^\(.*\)$/.test(p.license) ? `(${p.license})` : p.license);
  }
  return [...ids].sort().join(' AND ');
}

function specFields(specText) {
  const license = /^License:\s*(.+?)\s*$/m.exec(specText)?.[1];
  const prov = specText.split('\n').filter((l) => /^Provides:\s*bundled\(npm\(/.test(l)).map((l) => l.replace(/\s+/g, ' ').trim());
  return { license, provides: prov };
}

/** NAMEs' lockfile paths and, transitively, their installed dependencies (dev ones too: build tools). */
function closure(names) {
  const found = new Set();
  const queue = names.map((n) => resolveFrom('', n) ?? fail(`${n} is not in package-lock.json`));
  while (queue.length > 0) {
    const p = queue.shift();
    if (found.has(p) || !existsSync(join(root, p))) continue; // another platform's optional binary
    found.add(p);
    const deps = { ...(lock[p].dependencies ?? {}), ...(lock[p].optionalDependencies ?? {}), ...(lock[p].peerDependencies ?? {}) };
    for (const d of Object.keys(deps)) {
      const q = resolveFrom(p, d);
      if (q) queue.push(q);
    }
  }
  return [...found].sort();
}

const [command, arg] = process.argv.slice(2);
if (command === 'closure') {
  process.stdout.write(`${closure(process.argv.slice(3)).join('\n')}\n`);
  process.exit(0);
}
const list = packages();
switch (command) {
  case 'list':
    process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
    break;
  case 'provides':
    process.stdout.write(`${provides(list).join('\n')}\n`);
    break;
  case 'license':
    process.stdout.write(`${licenseExpression(list)}\n`);
    break;
  case 'runtime-modules':
    process.stdout.write(`${list.filter((p) => p.how === 'module').map((p) => p.path).join('\n')}\n`);
    break;
  case 'install-licenses': {
    if (!arg) fail('install-licenses needs a destination directory');
    for (const p of list) {
      const dest = join(arg, p.name);
      mkdirSync(dest, { recursive: true });
      for (const f of p.licenseFiles) copyFileSync(join(root, p.path, f), join(dest, f));
    }
    break;
  }
  case 'check': {
    if (!arg) fail('check needs the spec file');
    const have = specFields(readFileSync(arg, 'utf8'));
    const want = { license: licenseExpression(list), provides: provides(list) };
    const problems = [];
    if (have.license !== want.license) problems.push(`License: is "${have.license}", this build ships "${want.license}"`);
    const missing = want.provides.filter((l) => !have.provides.includes(l));
    const extra = have.provides.filter((l) => !want.provides.includes(l));
    if (missing.length) problems.push(`missing: ${missing.join('; ')}`);
    if (extra.length) problems.push(`not shipped: ${extra.join('; ')}`);
    if (problems.length) fail(`${arg} does not match what the bundle holds (${posix.basename(arg)} is made by scripts/make-tarball.sh from the same lockfile):\n  ${problems.join('\n  ')}`);
    break;
  }
  default:
    fail(`unknown command ${JSON.stringify(command ?? '')} (list, provides, license, runtime-modules, install-licenses DIR, check SPEC)`);
}
