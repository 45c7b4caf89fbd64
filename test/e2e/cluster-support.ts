// For the cluster e2e test and the benchmark: a request function to an API server (the fake over
// anonymous http, or a real one through a kubeconfig), and the status apply of plugin/cluster.
import { kubeRequest, parseKubeconfig } from '../../plugin/kube';
import type { KubeSend } from '../../plugin/cluster';
import { readFileSync } from 'node:fs';
import { anonymousKubeconfigText } from '../support/fake-apiserver-https';
export { applyNodeStatus } from '../../plugin/cluster';

export function kubeSendFor(url: string): KubeSend {
  const c = parseKubeconfig(anonymousKubeconfigText(url), '/nonexistent/kubeconfig');
  return (r) => kubeRequest(c, r);
}

/** the same, to a real API server through a kubeconfig file (client certificate) */
export function kubeSendForKubeconfig(path: string): KubeSend {
  const c = parseKubeconfig(readFileSync(path, 'utf8'), path);
  return (r) => kubeRequest(c, r);
}
