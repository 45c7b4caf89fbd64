// sd_notify(3), the few lines of it the agent needs: one datagram per message to the unix socket
// systemd names in NOTIFY_SOCKET (a path, or "@name" in the abstract namespace), carrying
// newline-separated KEY=VALUE assignments (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1).
// Node's dgram has no AF_UNIX, so the socket comes from libc through koffi (native/libc.ts).
import { closeFd, unixDgramSocket, unixSendTo } from '../../native/libc';
import { messageOf } from '../model/errors';

export interface Notifier {
  /** the address from NOTIFY_SOCKET */
  readonly socket: string;
  /** Sends one message; false (and onError) when it could not be sent. Never throws, never blocks. */
  send(fields: Readonly<Record<string, string>>): boolean;
  close(): void;
}

/** The message text: one KEY=VALUE per line; a value's newlines would start a new key, so they become spaces. */
export function notifyMessage(fields: Readonly<Record<string, string>>): string {
  return Object.entries(fields)
    .map(([k, v]) => {
      if (!/^[A-Z_][A-Z0-9_]*$/.test(k)) throw new Error(`sd_notify: ${JSON.stringify(k)} is not a valid variable name`);
      return `${k}=${v.replace(/[\r\n]+/g, ' ')}`;
    })
    .join('\n');
}

/**
 * A notifier for NOTIFY_SOCKET, or undefined when the service manager did not ask for one
 * (not started by systemd, or Type= is not notify).
 */
export function notifierFromEnv(env: NodeJS.ProcessEnv = process.env, onError: (err: Error) => void = () => {}): Notifier | undefined {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return undefined;
  if (!socket.startsWith('/') && !socket.startsWith('@')) {
    // e.g. vsock: addresses (systemd in a VM); the agent only runs under a local systemd
    onError(new Error(`sd_notify: NOTIFY_SOCKET ${JSON.stringify(socket)} is not a unix socket path or @abstract name; not notifying`));
    return undefined;
  }
  let fd: number | undefined;
  return {
    socket,
    send(fields) {
      try {
        fd ??= unixDgramSocket();
        unixSendTo(fd, Buffer.from(notifyMessage(fields), 'utf8'), socket);
        return true;
      } catch (err) {
        onError(new Error(`sd_notify to ${socket}: ${messageOf(err)}`));
        return false;
      }
    },
    close() {
      if (fd !== undefined) closeFd(fd);
      fd = undefined;
    },
  };
}

/**
 * How often to send WATCHDOG=1: half of WATCHDOG_USEC (as sd_watchdog_enabled(3) advises), or
 * undefined when no watchdog is asked for, or it is meant for another process (WATCHDOG_PID).
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!env.WATCHDOG_USEC || !Number.isSafeInteger(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}
