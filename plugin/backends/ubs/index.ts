// The UBS backend's public surface (see backend.ts).
export { UbsBackend, UbsNameTakenError, UbsSdkError, SHARES_ENV, UBS_DURABLE, inspectUbs, lookupProblem, ubsData, type UbsHandleData, type UbsShareHandle } from './backend';
export { NO_NAME_SECRET_WARNING, ubsConfigProblems, ubsConfigWarnings } from './check';
export { UBS_KIND, SDK_SOCKET_DIR, readUbsConfig, defaultUbsConfig, resolveGroups, type UbsBackendConfig, type PathPair } from './config';
export { sdkNameOf, readNameSecret, SDK_NAME_MAX, SDK_NAME_RE } from './naming';
export { parseShmdevMajor, readShmdevMajor, OBMM_SHMDEV } from './devices';
export { CDI_DEVICE_NAME, CDI_KIND, cdiSpec, runtimeResolvesCdi, writeCdiSpec } from './cdi';
export { probeHolder } from './holder/client';
export { HOLDER_SOCKET, type HolderHello } from './holder/protocol';
