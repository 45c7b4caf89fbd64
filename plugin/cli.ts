#!/usr/bin/env node
// nri-memshare: the one executable. `run` is the daemon; `status` and `check-config` are for people.
import { existsSync } from 'node:fs';
import { buildInfo } from './agent/build-info';
import { LOG_LEVELS, type LogLevel } from './agent/logger';
import type { Daemon } from './agent/daemon';
import { printable } from './model/printable';
import { messageOf } from './model/errors';

const USAGE = `usage: nri-memshare <command> [options]

commands:
  run           run the agent (the NRI plugin daemon)
  status        whether the agent runs and is registered, and the shares on this node
  check-config  list every problem in the config file
  version       print the version (--json: also the NRI protocol and Node.js versions)
  help          this text; help COMMAND (or COMMAND --help): that command's options and exit status

options:
  --config FILE      config file (default /etc/nri-memshare/config.json)
  --socket PATH      (run) the NRI socket to connect to, instead of the config's nri.socket
  --log-level LEVEL  (run) log level instead of the config's log.level:
                     trace, debug, info, warn, error, fatal, silent
  --json             (status, version) print JSON instead of text
  --version, -V      print the version
  --help, -h         this text

exit status of status: 0 the agent runs and is registered with containerd; 1 it runs but is not
  registered; 2 bad arguments or config; 3 the agent does not run; 4 unknown (needs root)

run by the runtime, not by people:
  ubs-access-check --share SPEC...  OCI createRuntime hook the ubs backend adds to UB containers:
                     reads the container's state on stdin and its user from the bundle's
                     config.json; exits 1 with the reason when a binding cannot be honoured
`;

const COMMANDS = ['run', 'status', 'check-config', 'version', 'help'];

/** `nri-memshare COMMAND --help` and `nri-memshare help COMMAND`. */
const COMMAND_HELP: Record<string, string> = {
  run: `usage: nri-memshare run [--config FILE] [--socket PATH] [--log-level LEVEL]

Runs the agent: connects to containerd's NRI socket and binds declared shares into the
containers whose pods ask for them. Logs JSON lines on standard output. Run by systemd
(nri-memshare.service) or the DaemonSet, not by hand.

  --config FILE      config file (default /etc/nri-memshare/config.json)
  --socket PATH      the NRI socket, instead of the config's nri.socket
  --log-level LEVEL  trace, debug, info, warn, error, fatal or silent, instead of log.level

exit status: 0 stopped by SIGTERM or SIGINT; 78 (EX_CONFIG) the config file is refused (the
unit does not restart it); 1 any other start failure (state directory locked by another agent,
backend not loadable); 2 bad arguments
`,
  status: `usage: nri-memshare status [--config FILE] [--json]

Whether the agent runs and is registered with containerd, its declaration sources, and the
shares on this node with their holders. Reads the state directory (needs root); creates nothing.

  --config FILE  config file (default /etc/nri-memshare/config.json)
  --json         print JSON instead of text

exit status (as systemctl status):
  0  the agent runs and is registered with containerd
  1  the agent runs but is not registered with containerd
  2  bad arguments, or a config it cannot use
  3  the agent does not run
  4  it cannot tell: not root
`,
  'check-config': `usage: nri-memshare check-config [--config FILE]

Lists every problem in the config file and the files it names, as run would refuse them, and
warns about what run would start with but report (no declarations directory yet, TLS
verification of the API server off, no config file: the defaults).

  --config FILE  config file (default /etc/nri-memshare/config.json)

exit status: 0 no problem (warnings on standard error); 1 problems; 2 bad arguments
`,
  version: `usage: nri-memshare version [--json]    (or: nri-memshare --version, -V)

Prints the version; version --json also the NRI protocol and Node.js versions.

exit status: 0
`,
  help: `usage: nri-memshare help [COMMAND]

Prints the usage, or COMMAND's options and exit status.

exit status: 0; 2 for an unknown COMMAND
`,
};

interface Args {
  command?: string;
  config?: string;
  socket?: string;
  logLevel?: LogLevel;
  json: boolean;
  help: boolean;
  version: boolean;
  /** help COMMAND */
  topic?: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { json: false, help: false, version: false };
  const value = (i: number, flag: string, what: string): string => {
    const v = argv[i];
    if (v === undefined || v === '' || v.startsWith('--')) throw new Error(`${flag} needs ${what}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i];
    const eq = x.startsWith('--') ? x.indexOf('=') : -1;
    const flag = eq > 0 ? x.slice(0, eq) : x;
    const inline = eq > 0 ? x.slice(eq + 1) : undefined;
    if (flag === '--config') a.config = inline ?? value(++i, flag, 'a file');
    else if (flag === '--socket') {
      a.socket = inline ?? value(++i, flag, 'an absolute path');
      if (!a.socket.startsWith('/')) throw new Error('--socket needs an absolute path');
    } else if (flag === '--log-level') {
      const l = inline ?? value(++i, flag, `a level (${LOG_LEVELS.join(', ')})`);
      if (!(LOG_LEVELS as readonly string[]).includes(l)) throw new Error(`--log-level ${JSON.stringify(l)}: not one of ${LOG_LEVELS.join(', ')}`);
      a.logLevel = l as LogLevel;
    } else if (x === '--json') a.json = true;
    else if (x === '--help' || x === '-h') a.help = true;
    else if (x === '--version' || x === '-V') a.version = true;
    else if (!x.startsWith('-') && !a.command) a.command = x;
    else if (!x.startsWith('-') && a.command === 'help' && !a.topic) a.topic = x;
    else throw new Error(`unknown argument ${JSON.stringify(x)}`);
  }
  return a;
}

/** The ubs backend's createRuntime hook (backends/ubs/access.ts): fast, nothing of the daemon loaded. */
async function ubsAccessCheck(argv: string[]): Promise<number> {
  const { runAccessCheck } = await import('./backends/ubs/access');
  if (process.stdin.isTTY) {
    process.stderr.write('nri-memshare ubs-access-check: reads the OCI container state on stdin (it is an OCI createRuntime hook)\n');
    return 2;
  }
  const { readFileSync } = await import('node:fs');
  let stdin = '';
  try {
    stdin = readFileSync(0, 'utf8');
  } catch {
    // no stdin: the check says it cannot read the state
  }
  const r = runAccessCheck(argv, stdin);
  if (r.message) process.stderr.write(`${r.message}\n`);
  return r.code;
}

async function main(): Promise<number> {
  if (process.argv[2] === 'ubs-access-check') return ubsAccessCheck(process.argv.slice(3));
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`nri-memshare: ${messageOf(err)}\n${USAGE}`);
    return 2;
  }
  // help for one command: `status --help`, `help status`
  const topic = args.command === 'help' ? (args.topic ?? (args.help ? 'help' : undefined)) : args.help ? args.command : undefined;
  if (topic !== undefined) {
    const text = COMMAND_HELP[topic];
    if (!text) {
      process.stderr.write(`nri-memshare: unknown command ${JSON.stringify(topic)}\n${USAGE}`);
      return 2;
    }
    process.stdout.write(text);
    return 0;
  }
  if (args.version || args.command === 'version') {
    const b = buildInfo();
    if (args.json) process.stdout.write(`${JSON.stringify(b)}\n`);
    else if (args.version) process.stdout.write(`nri-memshare ${b.version}\n`); // one line: scripts compare it
    else process.stdout.write(`nri-memshare ${b.version}\nNRI protocol ${b.nriVersion}\nNode.js ${b.node}\n`);
    return 0;
  }
  if (args.help || args.command === 'help' || !args.command) {
    process.stdout.write(USAGE);
    return args.command || args.help ? 0 : 2;
  }
  if (!COMMANDS.includes(args.command)) {
    process.stderr.write(`nri-memshare: unknown command ${JSON.stringify(args.command)}\n${USAGE}`);
    return 2;
  }
  const { DEFAULT_CONFIG_PATH, ConfigError, EXIT_CONFIG, checkConfig, loadConfig } = await import('./agent/config');
  const configPath = args.config ?? DEFAULT_CONFIG_PATH;
  switch (args.command) {
    case 'check-config': {
      const problems = checkConfig(configPath);
      const warnings: string[] = [];
      // the default file may be absent (run then uses the built-in defaults): say which was checked
      if (problems.length === 0 && !existsSync(configPath)) warnings.push('does not exist: checked the built-in defaults, which `run` uses without the file');
      // keys all valid: the files and libraries they name must also open as `run` opens them
      // (a ubs backend's SDK library loads, nothing in it is called)
      if (problems.length === 0) {
        const files = await (await import('./agent/config-check')).checkConfigFiles(loadConfig(configPath));
        problems.push(...files.problems);
        warnings.push(...files.warnings);
      }
      // problems quote key names and paths from the file: escaped again here so that none can
      // forge a line of its own or drive the terminal
      const where = printable(configPath);
      for (const w of warnings) process.stderr.write(`${where}: warning: ${printable(w)}\n`);
      if (problems.length === 0) {
        process.stdout.write(`${where}: ok${warnings.length ? ` (${warnings.length} warning${warnings.length > 1 ? 's' : ''})` : ''}\n`);
        return 0;
      }
      for (const p of problems) process.stderr.write(`${where}: ${printable(p)}\n`);
      return 1;
    }
    case 'status': {
      const { showStatus, STATUS_EXIT } = await import('./agent/status');
      let config;
      try {
        config = loadConfig(configPath);
      } catch (err) {
        process.stderr.write(`nri-memshare status: ${printable(messageOf(err))}\n`);
        return STATUS_EXIT.usage;
      }
      return showStatus(config, args.json, process.stdout);
    }
    case 'run': {
      const { createLogger } = await import('./agent/logger');
      // the logger exists before the config is read: a start that fails is a log line like any
      // other (with its journald priority), not plain text on stderr
      const log = createLogger({ level: args.logLevel ?? 'info' });
      // the handlers come first: a stop asked for while the agent starts (the first Kubernetes list
      // may take seconds) waits for the start to finish and then stops it as usual
      let daemon: Daemon | undefined;
      let stopAsked: string | undefined;
      const stopDaemon = (d: Daemon, sig: string) => {
        log.info({ signal: sig }, 'stopping');
        d.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            log.error({ err: err instanceof Error ? err.message : String(err) }, 'stop failed');
            process.exit(1);
          },
        );
      };
      const onSignal = (sig: string) => {
        if (stopAsked) return;
        stopAsked = sig;
        if (daemon) stopDaemon(daemon, sig);
        else log.info({ signal: sig }, 'stopping once started');
      };
      process.on('SIGTERM', () => onSignal('SIGTERM'));
      process.on('SIGINT', () => onSignal('SIGINT'));
      try {
        const config = loadConfig(configPath);
        if (args.socket) config.nri.socket = args.socket;
        if (args.logLevel) config.log.level = args.logLevel;
        log.level = config.log.level;
        const { startDaemon } = await import('./agent/daemon');
        daemon = await startDaemon(config, log);
        if (stopAsked) stopDaemon(daemon, stopAsked);
        return -1; // keep running
      } catch (err) {
        log.level = 'info';
        log.fatal({ config: configPath }, `start failed: ${err instanceof Error ? err.message : String(err)}`);
        // a refused config stays refused: a status systemd does not restart on (see EXIT_CONFIG)
        return err instanceof ConfigError ? EXIT_CONFIG : 1;
      }
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
