// The NRI plugin stub: a plugin is a set of handlers; the stub does the protocol.
export { Stub, DEFAULT_SOCKET, type StubOptions, type StubObserver, type StubState, type Logger } from './stub';
export type { Handlers, CreateContainerResult, RequestContext } from './handlers';
export { Mux, MAX_FRAME, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN } from './mux';
export { eventsOf, subscriptionMask } from './events';
export * from './api';
