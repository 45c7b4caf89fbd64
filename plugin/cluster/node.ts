// The node's name in the cluster: the config's kubernetes.nodeName, else NODE_NAME (set from the
// downward API when the agent runs as a pod), else the host name lowercased, as the kubelet does
// by default (--hostname-override aside: then set nodeName).
import { hostname } from 'node:os';

export function resolveNodeName(configured: string | undefined, env: NodeJS.ProcessEnv = process.env, host: () => string = hostname): string {
  if (configured) return configured;
  if (env.NODE_NAME) return env.NODE_NAME;
  return host().toLowerCase();
}
