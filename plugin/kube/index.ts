// The Kubernetes API client: credentials (kubeconfig or in-cluster), one request function, a list
// page and a watch stream. What is listed and watched, and what is written, is the callers'
// business (plugin/declarations: ShareMemory objects; plugin/cluster: status and Events).
export {
  KubeconfigError,
  loadInCluster,
  loadKubeconfig,
  parseKubeconfig,
  loadKubeCredentials,
  SERVICE_ACCOUNT_DIR,
  MAX_CREDENTIAL_FILE_BYTES,
  type KubeTransport,
  type KubeConnection,
  type KubeCredentials,
  type InClusterOptions,
  type KubeconfigOptions,
} from './kubeconfig';
export {
  kubeRequest,
  keptAliveRequests,
  sendRequest,
  readBody,
  describeRequestError,
  BodyTooLargeError,
  KubeApiError,
  GoneError,
  MAX_RESPONSE_BYTES,
  type KubeRequest,
  type KubeResponse,
} from './request';
export { readListPage, metaOf, MAX_PAGE_METADATA_BYTES, type ListItem, type ListPage, type ListPageOptions } from './list';
export { readWatchStream, type WatchEvent, type WatchOutcome, type WatchStreamOptions } from './watch';
