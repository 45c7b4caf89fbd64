// For the cluster e2e test and the benchmark: a request function to a fake API server over
// anonymous http, and the status apply of plugin/cluster (as another node would write).
import { kubeRequest, parseKubeconfig } from '../../plugin/declarations';
import type { KubeSend } from '../../plugin/cluster';
export { applyNodeStatus } from '../../plugin/cluster';

export function kubeSendFor(url: string): KubeSend {
  const c = parseKubeconfig(`apiVersion: v1\nkind: Config\ncurrent-context: t\ncontexts:\n- name: t\n  context: {cluster: c}\nclusters:\n- name: c\n  cluster:\n    server: ${url}\n`, '/nonexistent/kubeconfig');
  return (r) => kubeRequest(c, r);
}
