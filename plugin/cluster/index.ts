// What the agent writes back to the cluster: this node's ShareMemory status entries and Events
// for refused bindings. Reads (the ShareMemory watch) are in plugin/declarations; the HTTP client is plugin/kube.
export { applyNodeStatus, fieldManagerFor, listOwnEntries, statusApplyBody, statusPath, APPLY_CONTENT_TYPE, type ApplyOutcome, type KubeSend, type NodeRefusal, type NodeShareStatus, type ShareRef } from './apply';
export { StatusWriter, type StatusWriterOptions, type StatusWriterStats, type StatusWriterLog } from './status-writer';
export { RefusalEvents, EVENT_REASON, REPORTING_CONTROLLER, microTime, type EventPod, type RefusalEventsOptions, type RefusalEventsStats } from './events';
export { resolveNodeName } from './node';
export { startClusterWriters, type ClusterWriters, type ClusterWritersOptions } from './writers';
