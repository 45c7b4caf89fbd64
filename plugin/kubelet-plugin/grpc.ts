// @grpc/grpc-js, loaded on first use: the DRA front door is off by default, and an agent that only
// serves NRI should not read, parse or initialize a gRPC library (in the shipped bundle it is a file
// of its own, dist/agent/grpc-js.js: scripts/bundle.js). Types come from an import type, free at run time.
import type * as Grpc from '@grpc/grpc-js';

export type { Grpc };

let loaded: typeof Grpc | undefined;

/** The gRPC library, required the first time it is asked for. */
export function grpc(): typeof Grpc {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loaded ??= require('@grpc/grpc-js') as typeof Grpc;
  return loaded;
}

/** A generated codec: what a unary method needs of its request and response messages. */
interface Codec<T> {
  encode(m: object): Buffer;
  decode(b: Uint8Array): T;
}

/**
 * A unary method's definition from its generated path and codecs; `requestDeserialize` replaces
 * the plain decode where a bad request must become an answer rather than a failed call.
 */
export function unaryMethod<Req, Res, In = Req>(
  method: { path: string; request: Codec<Req>; response: Codec<Res> },
  requestDeserialize?: (b: Buffer) => In,
): Grpc.MethodDefinition<object, object> {
  return {
    path: method.path,
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: object) => method.request.encode(m),
    requestDeserialize: requestDeserialize ?? ((b: Buffer) => method.request.decode(b)),
    responseSerialize: (m: object) => method.response.encode(m),
    responseDeserialize: (b: Buffer) => method.response.decode(b),
  } as Grpc.MethodDefinition<object, object>;
}
