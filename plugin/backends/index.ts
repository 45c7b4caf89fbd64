// Memory backends: make a share present on the node and take it away again. Each implements the
// Backend interface of ../memshare/types (acquire/release/present/usage/injection); a new one
// (e.g. UBS through the ubsmem SDK) is one more file here exported beside LocalBackend.
export { LocalBackend, DEFAULT_SHARES_DIR, CONTAINER_SHM_DIR, type LocalBackendOptions, type MountOps } from './local';
