// ttrpc server: serves registered services on any number of transports. Requests are handled
// concurrently and answered in completion order, matched by stream id.
import { DEFAULT_MAX_MESSAGE, MessageReader, MessageType, encodeMessage, type Message } from './channel';
import { decodeRequest, encodeResponse, type KeyValue } from './codec';
import { Code, MAX_TIMER_MS, TtrpcError } from './status';
import type { Transport } from './transport';

export interface CallContext {
  service: string;
  method: string;
  metadata: KeyValue[];
  /** absolute deadline (Date.now() ms) from the request's timeout_nano, or undefined */
  deadline?: number;
  /** aborted when the deadline passes or the connection closes */
  signal: AbortSignal;
}

/** A method takes the request payload and returns the response payload. */
export type Method = (payload: Uint8Array, ctx: CallContext) => Promise<Uint8Array> | Uint8Array;

export interface ServerOptions {
  maxMessage?: number;
  /** told about protocol problems that are answered or dropped, never thrown */
  onProtocolError?: (err: Error) => void;
}

export class Server {
  private readonly services = new Map<string, Map<string, Method>>();
  private readonly maxMessage: number;

  constructor(private readonly opts: ServerOptions = {}) {
    this.maxMessage = opts.maxMessage ?? DEFAULT_MAX_MESSAGE;
  }

  register(service: string, methods: Record<string, Method>): this {
    this.services.set(service, new Map(Object.entries(methods)));
    return this;
  }

  /** Serves requests arriving on the transport until it closes. */
  serve(transport: Transport): void {
    const reader = new MessageReader(this.maxMessage);
    const inFlight = new Map<number, (reason: Error) => void>();
    let lastStream = 0;
    const reply = (streamId: number, code: Code, message: string, payload: Uint8Array = new Uint8Array(0)) => {
      if (transport.closed) return;
      let data = encodeResponse({ status: { code, message }, payload });
      if (data.length > this.maxMessage) {
        data = encodeResponse({
          status: { code: Code.RESOURCE_EXHAUSTED, message: `ttrpc: response of ${data.length} bytes exceeds maximum message size of ${this.maxMessage}` },
          payload: new Uint8Array(0),
        });
      }
      transport.write(encodeMessage(streamId, MessageType.Response, data));
    };
    const onMessage = (m: Message) => {
      if (m.type !== MessageType.Request) {
        this.opts.onProtocolError?.(new Error(`ttrpc: unexpected message type ${m.type} on stream ${m.streamId}`));
        return;
      }
      if (m.streamId % 2 !== 1) {
        reply(m.streamId, Code.INVALID_ARGUMENT, 'StreamID must be odd for client initiated streams');
        return;
      }
      if (m.streamId <= lastStream) {
        reply(m.streamId, Code.INVALID_ARGUMENT, 'StreamID must increment');
        return;
      }
      lastStream = m.streamId;
      this.dispatch(m, inFlight, reply);
    };
    transport.onData((bytes) =>
      reader.push(bytes, onMessage, (o) => {
        reply(o.streamId, Code.RESOURCE_EXHAUSTED, `ttrpc: message length ${o.length} exceeds maximum message size of ${this.maxMessage}`);
      }),
    );
    transport.onClose(() => {
      for (const abort of inFlight.values()) abort(new TtrpcError(Code.CANCELLED, 'ttrpc: connection closed'));
      inFlight.clear();
    });
  }

  private dispatch(
    m: Message,
    inFlight: Map<number, (reason: Error) => void>,
    reply: (streamId: number, code: Code, message: string, payload?: Uint8Array) => void,
  ): void {
    let req;
    try {
      req = decodeRequest(m.data);
    } catch (err) {
      reply(m.streamId, Code.INVALID_ARGUMENT, `ttrpc: malformed request: ${(err as Error).message}`);
      return;
    }
    const service = this.services.get(req.service);
    if (!service) return reply(m.streamId, Code.UNIMPLEMENTED, `service ${req.service}`);
    const method = service.get(req.method);
    if (!method) return reply(m.streamId, Code.UNIMPLEMENTED, `method ${req.method}`);

    // the AbortController is made only if a handler looks at ctx.signal: most never do
    let controller: AbortController | undefined;
    let abortedWith: Error | undefined; // remembered, so a signal asked for later is aborted too
    const abort = (reason: Error) => {
      abortedWith ??= reason;
      controller?.abort(reason);
    };
    inFlight.set(m.streamId, abort);
    let timer: NodeJS.Timeout | undefined;
    let deadline: number | undefined;
    let answered = false;
    const finish = (code: Code, message: string, payload?: Uint8Array) => {
      if (answered) return;
      answered = true;
      if (timer) clearTimeout(timer);
      inFlight.delete(m.streamId);
      reply(m.streamId, code, message, payload);
    };
    if (req.timeoutNano > 0) {
      const ms = req.timeoutNano / 1e6;
      deadline = Date.now() + ms;
      // a deadline beyond what a timer can hold (~24.8 days) is no deadline in practice
      if (ms <= MAX_TIMER_MS) timer = setTimeout(() => {
        abort(new TtrpcError(Code.DEADLINE_EXCEEDED, 'context deadline exceeded'));
        finish(Code.DEADLINE_EXCEEDED, 'context deadline exceeded');
      }, Math.max(0, Math.ceil(ms)));
    }
    const ctx: CallContext = {
      service: req.service,
      method: req.method,
      metadata: req.metadata,
      deadline,
      get signal() {
        if (!controller) {
          controller = new AbortController();
          if (abortedWith) controller.abort(abortedWith);
        }
        return controller.signal;
      },
    };
    let result: Promise<Uint8Array> | Uint8Array;
    try {
      result = method(req.payload, ctx);
    } catch (err) {
      return finish(codeOf(err), messageOf(err));
    }
    if (result instanceof Uint8Array) return finish(Code.OK, '', result);
    // Promise.resolve: a handler returning a non-promise by mistake must not throw in the socket callback
    Promise.resolve(result).then(
      (payload) =>
        payload instanceof Uint8Array
          ? finish(Code.OK, '', payload)
          : finish(Code.INTERNAL, `ttrpc: handler for ${req.service}/${req.method} returned no bytes`),
      (err: unknown) => finish(codeOf(err), messageOf(err)),
    );
  }
}

function codeOf(err: unknown): Code {
  return err instanceof TtrpcError ? err.code : Code.UNKNOWN;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
