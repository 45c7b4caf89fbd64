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
