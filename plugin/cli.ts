#!/usr/bin/env node
// nri-memshare: the one executable. `run` is the daemon; `status` and `check-config` are for people.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const USAGE = `usage: nri-memshare <command> [options]

commands:
  run           run the agent (the NRI plugin daemon)
  status        show the shares on this node, their size, usage and holders
  check-config  list every problem in the config file

options:
  --config FILE  config file (default /etc/nri-memshare/config.json)
  --socket PATH  (run) the NRI socket to connect to, instead of the config's nri.socket
  --json         (status) print JSON instead of a table
  --version      print the version
  --help         this text
`;

function version(): string {
  for (const up of ['..', join('..', '..')]) {
    try {
      return (JSON.parse(readFileSync(join(__dirname, up, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      // try the next candidate: dist/plugin/ in the tree, or beside the package
    }
  }
  return 'unknown';
}

interface Args {
  command?: string;
  config?: string;
  socket?: string;
  json: boolean;
  help: boolean;
  version: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { json: false, help: false, version: false };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i];
    if (x === '--config') {
      a.config = argv[++i];
      if (!a.config) throw new Error('--config needs a file');
    } else if (x.startsWith('--config=')) a.config = x.slice(9);
    else if (x === '--socket') {
      a.socket = argv[++i];
      if (!a.socket || !a.socket.startsWith('/')) throw new Error('--socket needs an absolute path');
    } else if (x === '--json') a.json = true;
    else if (x === '--help' || x === '-h') a.help = true;
    else if (x === '--version') a.version = true;
    else if (!x.startsWith('-') && !a.command) a.command = x;
    else throw new Error(`unknown argument ${JSON.stringify(x)}`);
  }
  return a;
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`nri-memshare: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.version) {
    process.stdout.write(`nri-memshare ${version()}\n`);
    return 0;
  }
  if (args.help || !args.command) {
    process.stdout.write(USAGE);
    return args.command || args.help ? 0 : 2;
  }
  const { DEFAULT_CONFIG_PATH, checkConfig, loadConfig } = await import('./service/config');
  const configPath = args.config ?? DEFAULT_CONFIG_PATH;
  switch (args.command) {
    case 'check-config': {
      const problems = checkConfig(configPath);
      if (problems.length === 0) {
        process.stdout.write(`${configPath}: ok\n`);
        return 0;
      }
      for (const p of problems) process.stderr.write(`${configPath}: ${p}\n`);
      return 1;
    }
    case 'status': {
      const { showStatus } = await import('./service/status');
      return showStatus(loadConfig(configPath), args.json, process.stdout);
    }
    case 'run': {
      const { startDaemon } = await import('./service/daemon');
      const { createLogger } = await import('./service/logger');
      const config = loadConfig(configPath);
      if (args.socket) config.nri.socket = args.socket;
      const log = createLogger({ level: config.log.level });
      const daemon = await startDaemon(config, log);
      const stop = (sig: string) => {
        log.info({ signal: sig }, 'stopping');
        daemon.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      return -1; // keep running
    }
    default:
      process.stderr.write(`nri-memshare: unknown command ${JSON.stringify(args.command)}\n${USAGE}`);
      return 2;
  }
}

main().then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`nri-memshare: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
