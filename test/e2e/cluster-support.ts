// For the cluster e2e test and the benchmark: a request function to a fake API server over
// anonymous http, and the status apply of plugin/cluster (as another node would write).
import { kubeRequest, parseKubeconfig } from '../../plugin/kube';
import type { KubeSend } from '../../plugin/cluster';
import { anonymousKubeconfigText } from '../support/fake-apiserver-https';
export { applyNodeStatus } from '../../plugin/cluster';

export function kubeSendFor(url: string): KubeSend {
  const c = parseKubeconfig(anonymousKubeconfigText(url), '/nonexistent/kubeconfig');
  return (r) => kubeRequest(c, r);
}
