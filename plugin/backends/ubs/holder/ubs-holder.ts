// The UB holder: a small process that owns the agent's link to the UB memory daemon and the
// mappings that keep the node's shares attached, so that they outlive the agent (a restart, a
// crash, an upgrade), as containerd's shims keep containers running across containerd restarts.
// The agent starts it (./client.ts) detached from itself and talks to it over a unix socket in
// its state dir (./protocol.ts). The holder never decides anything: it does what the agent asks
// and answers what it maps. It ends when asked (`shutdown`, SIGTERM), when its socket is removed
// (nobody could find it again), or once it maps nothing and no agent has been connected for
// IDLE_EXIT_MS; when it dies, the daemon treats its dropped link
// as its exit (ubs-sdk.md B.4) and the next agent finds the shares detached (new memids).
// usage: node ubs-holder.js --socket PATH --sdk LIBRARY
import { chmodSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection, createServer, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { loadUbsSdk } from '../../../../native/ubs-sdk';
import { SdkPool } from './pool';
import { HOLDER_PROTOCOLS, LineReader, parseRequest, type HolderHello, type HolderReply, type HolderRequest } from './protocol';

/** How often the holder checks that its socket is still its own. */
const SOCKET_CHECK_MS = 2000;
/** An idle holder (no mapping, no agent) goes after this long: nothing of it is worth keeping. */
const IDLE_EXIT_MS = Number(process.env.NRI_MEMSHARE_HOLDER_IDLE_MS ?? 30_000);

function log(level: 'info' | 'warn' | 'error', msg: string, detail: object = {}): void {
  process.stdout.write(`${JSON.stringify({ level, time: new Date().toISOString(), name: 'nri-memshare-ubs-holder', pid: process.pid, msg, ...detail })}\n`);
}

function arg(name: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (!v) {
    process.stderr.write(`ubs-holder: ${name} is required (usage: ubs-holder --socket PATH --sdk LIBRARY)\n`);
    process.exit(2);
  }
  return v;
}

/** True when another holder already answers on the socket. */
function alive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function main(): Promise<void> {
  const socketPath = arg('--socket');
  const library = arg('--sdk');
  if (await alive(socketPath)) {
    log('info', 'another holder already serves this socket; exiting', { socket: socketPath });
    return;
  }
  const pool = new SdkPool(loadUbsSdk(library), { info: (m, d) => log('info', m, d), warn: (m, d) => log('warn', m, d) });
  const instance = randomBytes(8).toString('hex');
  const startedAt = Date.now();
  const version = ownVersion();
  const clients = new Set<Socket>();
  let idleTimer: NodeJS.Timeout | undefined;
  let stopping = false;
  let socketIno = -1;

  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log('info', `holder stopping (${why}); its mappings end`, { held: pool.heldWithLength().map((h) => h.name) });
    server.close();
    for (const c of clients) c.destroy();
    await pool.close().catch(() => undefined);
    try {
      if (statSync(socketPath).ino === socketIno) unlinkSync(socketPath);
    } catch {
      // gone already
    }
    process.exit(0);
  };

  const armIdle = (): void => {
    clearTimeout(idleTimer);
    idleTimer = undefined;
    if (clients.size === 0 && pool.heldWithLength().length === 0) {
      idleTimer = setTimeout(() => {
        if (clients.size === 0 && pool.heldWithLength().length === 0) void stop('idle: no mapping and no agent');
      }, IDLE_EXIT_MS);
    }
  };

  const answer = async (req: HolderRequest): Promise<HolderReply> => {
    switch (req.op) {
      case 'hello': {
        const common = HOLDER_PROTOCOLS.filter((p) => req.protocols.includes(p));
        if (!common.length) return { error: `no common protocol: the holder speaks ${HOLDER_PROTOCOLS.join(', ')}, the agent ${req.protocols.join(', ')}` };
        const st = pool.linkState();
        const hello: HolderHello = {
          protocol: Math.max(...common), instance, pid: process.pid, version, startedAt,
          sdk: st.ready ? { ready: true } : { ready: false, reason: st.reason },
          held: pool.heldWithLength(),
        };
        return { hello };
      }
      case 'allocate':
        return { code: await pool.allocate(req.region, req.name, req.sizeBytes, req.mode, req.flags) };
      case 'deallocate':
        return { code: await pool.deallocate(req.name) };
      case 'map': {
        const code = await pool.map(req.name, req.lengthBytes, req.prot);
        if (code === 0) log('info', 'mapped', { name: req.name, lengthBytes: req.lengthBytes });
        return { code };
      }
      case 'unmap': {
        const code = await pool.unmap(req.name);
        if (code === 0) log('info', 'unmapped', { name: req.name });
        return { code };
      }
      case 'lookup':
        return pool.lookup(req.name);
      case 'listLookup':
        return pool.listLookup(req.prefix);
      case 'shutdown':
        setImmediate(() => void stop('asked by the agent'));
        return { code: 0 };
    }
  };

  const server = createServer((sock) => {
    clients.add(sock);
    armIdle();
    sock.setEncoding('utf8');
    const send = (id: number | undefined, reply: HolderReply) => {
      if (!sock.destroyed) sock.write(`${JSON.stringify({ id, ...reply })}\n`);
    };
    const reader = new LineReader(
      (line) => {
        const p = parseRequest(line);
        if ('problem' in p) {
          send(p.id, { error: `bad request: ${p.problem}` });
          return;
        }
        if (pool.unavailable() && p.req.op !== 'hello' && p.req.op !== 'shutdown') {
          send(p.id, { error: pool.unavailable()! });
          return;
        }
        answer(p.req).then(
          (r) => {
            send(p.id, r);
            armIdle();
          },
          (err: unknown) => send(p.id, { error: err instanceof Error ? err.message : String(err) }),
        );
      },
      () => {
        send(undefined, { error: 'bad request: line too long' });
        sock.destroy();
      },
    );
    sock.on('data', (d: string) => reader.push(d));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clients.delete(sock);
      armIdle();
    });
  });
  try {
    unlinkSync(socketPath); // a dead holder's socket (nothing answers on it: checked above)
  } catch {
    // none
  }
  // only root (the agent) may connect: the socket file is 0600 from the start
  const oldMask = process.umask(0o177);
  server.listen(socketPath, () => {
    process.umask(oldMask);
    chmodSync(socketPath, 0o600);
    socketIno = statSync(socketPath).ino;
    log('info', 'holder serving', { socket: socketPath, instance, library });
    armIdle();
  });
  server.on('error', (err) => {
    log('error', 'holder cannot serve its socket', { socket: socketPath, err: err.message });
    process.exit(1);
  });
  // a holder whose socket is gone (its state dir removed) can never be found again: it goes
  const watch = setInterval(() => {
    if (socketIno < 0) return; // not listening yet
    try {
      if (statSync(socketPath).ino !== socketIno) void stop('its socket was replaced');
    } catch {
      void stop('its socket was removed');
    }
  }, SOCKET_CHECK_MS);
  watch.unref();
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // the agent's terminal or journal may go away: a write error must not kill what holds the memory
  process.stdout.on('error', () => undefined);
  process.on('SIGPIPE', () => undefined);
  process.on('SIGHUP', () => undefined);
}

/** The package version beside this file (bundle: ../../package.json; tsc output: further up). */
function ownVersion(): string {
  for (let up = '..'; up.length < 30; up += '/..') {
    try {
      const v = (JSON.parse(readFileSync(join(__dirname, up, 'package.json'), 'utf8')) as { version?: unknown }).version;
      if (typeof v === 'string') return v;
    } catch {
      // not here
    }
  }
  return 'unknown';
}

main().catch((err: unknown) => {
  log('error', 'holder failed to start', { err: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
