import type { Duplex } from 'node:stream';

/**
 * The byte stream a ttrpc client or server runs over: a socket, or one logical connection of a
 * multiplexer. Deliberately smaller than a Node Duplex so a mux connection needs no stream machinery.
 */
export interface Transport {
  /** Writes one whole ttrpc message (header and data). */
  write(message: Buffer): void;
  onData(listener: (bytes: Buffer) => void): void;
  onClose(listener: (err?: Error) => void): void;
  close(err?: Error): void;
  readonly closed: boolean;
}

/** Adapts a Node duplex stream (net.Socket, a stream pair) to a Transport. */
export function duplexTransport(stream: Duplex): Transport {
  let closed = false;
  const closeListeners: Array<(err?: Error) => void> = [];
  const fireClose = (err?: Error) => {
    if (closed) return;
    closed = true;
    for (const l of closeListeners) l(err);
  };
  stream.on('error', (err) => fireClose(err));
  stream.on('close', () => fireClose());
  stream.on('end', () => {
    fireClose();
    stream.destroy();
  });
  return {
    write: (message) => {
      if (!closed) stream.write(message);
    },
    onData: (listener) => stream.on('data', listener),
    onClose: (listener) => closeListeners.push(listener),
    close: (err) => {
      stream.destroy();
      fireClose(err);
    },
    get closed() {
      return closed;
    },
  };
}
