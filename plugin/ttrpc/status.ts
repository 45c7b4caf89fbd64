// gRPC status codes as ttrpc carries them (google.rpc.Status.code).
export enum Code {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
}

/** An error with a status code: what a handler throws to choose the code, and what a call rejects with. */
export class TtrpcError extends Error {
  constructor(
    readonly code: Code,
    message: string,
  ) {
    super(message);
    this.name = 'TtrpcError';
  }
}

/** The connection is gone; pending calls fail with this. */
export class ClosedError extends TtrpcError {
  constructor(reason = 'ttrpc: closed') {
    super(Code.UNAVAILABLE, reason);
    this.name = 'ClosedError';
  }
}

/** The sender refuses a message over the maximum size (the caller may split it and try again). */
export class OversizedMessageError extends TtrpcError {
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super(Code.RESOURCE_EXHAUSTED, `ttrpc: message length ${size} exceeds maximum message size of ${limit}`);
    this.name = 'OversizedMessageError';
  }
}

/** The longest delay setTimeout takes; beyond it Node fires at once (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
