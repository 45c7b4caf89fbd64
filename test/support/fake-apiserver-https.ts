// Kubeconfigs for the fake API server. Over https (FakeApiServer({tls: selfSignedCert()})):
// credentials go only to an https:// server (kubeconfig.ts refuses them over http), so the tests
// that send them point a kubeconfig at it that either trusts its certificate or skips the check.
// Over http: anonymous, no user at all.

/** A kubeconfig whose one context, "t", is cluster "c" at `server`, with no user (anonymous). */
export const anonymousKubeconfigText = (server: string): string =>
  `apiVersion: v1\nkind: Config\ncurrent-context: t\ncontexts:\n- name: t\n  context: {cluster: c}\nclusters:\n- name: c\n  cluster:\n    server: ${server}\n`;
/** Cluster fields of kubeconfigText that trust `cert` (its certificate-authority-data). */
export const trustCert = (cert: { cert: Buffer }): string => `    certificate-authority-data: ${cert.cert.toString('base64')}\n`;

/** Cluster fields of kubeconfigText that do not check the server's certificate. */
export const SKIP_TLS_VERIFY = '    insecure-skip-tls-verify: true\n';

/**
 * A kubeconfig whose one context, "test", is cluster "c" at `server` and user "u". `user` and
 * `cluster` are their further fields, each line indented by four spaces and ending in a newline.
 */
export function kubeconfigText(server: string, user: string, cluster: string): string {
  return `apiVersion: v1
kind: Config
current-context: test
contexts:
- name: test
  context: {cluster: c, user: u}
clusters:
- name: c
  cluster:
    server: ${server}
${cluster}users:
- name: u
  user:
${user}`;
}
