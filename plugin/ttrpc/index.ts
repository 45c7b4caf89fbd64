// ttrpc for Node: client and server over any byte stream. Knows nothing of NRI.
export { Client, type CallOptions } from './client';
export { Server, type CallContext, type Method, type ServerOptions } from './server';
export { Code, TtrpcError, ClosedError, OversizedMessageError } from './status';
export { duplexTransport, type Transport } from './transport';
export { DEFAULT_MAX_MESSAGE, HEADER_LENGTH, MessageReader, MessageType, encodeMessage, type Message } from './channel';
