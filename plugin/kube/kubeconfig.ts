// Credentials for the Kubernetes API: in-cluster (the pod's service account) or a kubeconfig file.
// Material that rotates on a live node is re-read on every (re)connect: the service-account token
// (projected tokens are refreshed about hourly), token files, and client certificate files (the
// kubelet's kubeconfig points at kubelet-client-current.pem, which the kubelet rotates).
// Exec and auth-provider plugins are refused: this agent runs no external programs for credentials.
// Credentials (a token, a token file, basic auth) only go to an https:// server: over http:// they
// are refused, naming the server. A server reached without verifying its certificate
// (insecure-skip-tls-verify, or anonymous http://) is allowed but marked in `transport`, so the
// agent warns at start and shows it in status. Every file is read as untrusted input: regular
// files only, bounded, and errors give line and column, never the file's content.
import { dirname, isAbsolute, resolve } from 'node:path';
import { isObject, type PlainObject, messageOf } from '../model';
import { FileReadError, readRegularFileSync } from '../files/regular-file';
import { YamlTextError, parseYamlDocuments } from '../files/yaml';

/** The largest kubeconfig, token, certificate or key file read (a CA bundle is some 200 KiB). */
export const MAX_CREDENTIAL_FILE_BYTES = 1024 * 1024;

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Something in the credentials cannot be used; names the source (file) and the field. */
export class KubeconfigError extends Error {
  constructor(
    /** "kubeconfig /path" or "in-cluster" */
    readonly source: string,
    /** the field, e.g. "users[name=admin].user.token", or "" */
    readonly field: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${source}: ${field ? `${field}: ` : ''}${reason}`, options);
    this.name = 'KubeconfigError';
  }
}

/** What one HTTP(S) connection to the API server needs, read fresh. */
export interface KubeConnection {
  server: URL;
  /** e.g. Authorization */
  headers: Record<string, string>;
  tls: {
    ca?: Buffer;
    cert?: Buffer;
    key?: Buffer;
    rejectUnauthorized: boolean;
    servername?: string;
  };
}

/**
 * How the API server is reached: "verified" (https, certificate checked), "unverified-tls"
 * (https with insecure-skip-tls-verify: anyone on the path can pose as the server and read the
 * credentials), "plain-http" (http://, anonymous: declarations can be forged on the way).
 */
export type KubeTransport = 'verified' | 'unverified-tls' | 'plain-http';

export interface KubeCredentials {
  /** the API server's base URL (may carry a path prefix, e.g. behind a proxy) */
  readonly server: URL;
  readonly transport: KubeTransport;
  /** for transports other than "verified": what is unsafe and which field makes it so */
  readonly transportWarning?: string;
  /** for messages: "in-cluster service account" or "kubeconfig /etc/kubernetes/kubelet.conf (context default)" */
  readonly description: string;
  /** reads rotating material now (token and certificate files); throws KubeconfigError */
  connection(): KubeConnection;
}


function readFile(source: string, field: string, path: string): Buffer {
  try {
    return readRegularFileSync(path, MAX_CREDENTIAL_FILE_BYTES);
  } catch (err) {
    const reason = err instanceof FileReadError ? err.message : `${path}: ${messageOf(err)}`;
    throw new KubeconfigError(source, field, `cannot read ${reason}`, { cause: err });
  }
}

function readToken(source: string, field: string, path: string): string {
  const token = readFile(source, field, path).toString('utf8').trim();
  if (!token) throw new KubeconfigError(source, field, `${path} is empty`);
  return token;
}

function parseServer(source: string, field: string, value: unknown): URL {
  if (typeof value !== 'string' || value === '') {
    throw new KubeconfigError(source, field, value === undefined ? 'is missing' : 'must be a URL such as "https://10.0.0.1:6443"');
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new KubeconfigError(source, field, `${JSON.stringify(value)} is not a URL (expected e.g. "https://10.0.0.1:6443")`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new KubeconfigError(source, field, `${JSON.stringify(value)}: only https:// and http:// servers are supported`);
  }
  return url;
}

export interface InClusterOptions {
  /** default process.env */
  env?: NodeJS.ProcessEnv;
  /** default /var/run/secrets/kubernetes.io/serviceaccount */
  serviceAccountDir?: string;
}

/** The pod's service account: KUBERNETES_SERVICE_HOST/PORT, token and ca.crt (both re-read per connect). */
export function loadInCluster(options: InClusterOptions = {}): KubeCredentials {
  const env = options.env ?? process.env;
  const dir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const source = 'in-cluster';
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new KubeconfigError(
      source,
      !host ? 'KUBERNETES_SERVICE_HOST' : 'KUBERNETES_SERVICE_PORT',
      'is not set: not running in a Kubernetes pod? (use "kubernetes": {"kubeconfig": PATH} on a node)',
    );
  }
  const server = parseServer(source, 'KUBERNETES_SERVICE_HOST/PORT', `https://${host.includes(':') ? `[${host}]` : host}:${port}`);
  const tokenPath = resolve(dir, 'token');
  const caPath = resolve(dir, 'ca.crt');
  const connection = (): KubeConnection => ({
    server,
    headers: { Authorization: `Bearer ${readToken(source, 'token', tokenPath)}` },
    tls: { ca: readFile(source, 'ca.crt', caPath), rejectUnauthorized: true },
  });
  connection(); // fail now, with the reason, rather than at the first request
  return { server, transport: 'verified', description: `in-cluster service account (${dir})`, connection };
}

export interface KubeconfigOptions {
  /** use this context instead of current-context */
  context?: string;
}

/** Reads and checks a kubeconfig file; paths in it are relative to the file's directory. */
export function loadKubeconfig(path: string, options: KubeconfigOptions = {}): KubeCredentials {
  const abs = resolve(path);
  const text = readFile(`kubeconfig ${abs}`, '', abs).toString('utf8');
  return parseKubeconfig(text, abs, options);
}

/** Parses kubeconfig text; `path` names the file in errors and anchors relative paths. */
export function parseKubeconfig(text: string, path: string, options: KubeconfigOptions = {}): KubeCredentials {
  const source = `kubeconfig ${path}`;
  const fail = (field: string, reason: string): never => {
    throw new KubeconfigError(source, field, reason);
  };
  let doc: unknown;
  try {
    const docs = parseYamlDocuments(text);
    if (docs.length > 1) return fail('', `has ${docs.length} YAML documents; a kubeconfig is one`);
    doc = docs[0];
  } catch (err) {
    // the parser's own messages can quote the text (a token, a key): only place and reason here
    if (err instanceof YamlTextError) return fail('', err.message);
    throw err;
  }
  if (!isObject(doc)) return fail('', 'expected a kubeconfig (a YAML mapping with clusters, users and contexts)');
  const base = dirname(path);
  const rel = (p: string) => (isAbsolute(p) ? p : resolve(base, p));

  const contextName = options.context ?? doc['current-context'];
  if (typeof contextName !== 'string' || contextName === '') {
    return fail('current-context', 'is not set; set it to one of the contexts (kubectl config use-context NAME)');
  }
  const context = named(doc, 'contexts', 'context', contextName, fail);
  const cField = `contexts[name=${contextName}].context`;
  const clusterName = context.cluster;
  if (typeof clusterName !== 'string' || !clusterName) return fail(`${cField}.cluster`, 'is missing');
  const userName = context.user;
  if (userName !== undefined && (typeof userName !== 'string' || !userName)) return fail(`${cField}.user`, 'must be a user name');

  // cluster
  const cluster = named(doc, 'clusters', 'cluster', clusterName, fail);
  const kf = `clusters[name=${clusterName}].cluster`;
  const server = parseServer(source, `${kf}.server`, cluster.server);
  if (cluster['proxy-url'] !== undefined) fail(`${kf}.proxy-url`, 'proxies are not supported; reach the API server directly');
  const insecure = cluster['insecure-skip-tls-verify'] === true;
  if (cluster['insecure-skip-tls-verify'] !== undefined && typeof cluster['insecure-skip-tls-verify'] !== 'boolean') {
    fail(`${kf}.insecure-skip-tls-verify`, 'must be true or false');
  }
  const caFile = optString(cluster, 'certificate-authority', kf, fail);
  const caData = optString(cluster, 'certificate-authority-data', kf, fail);
  if (caFile && caData) fail(`${kf}.certificate-authority-data`, 'set either certificate-authority or certificate-authority-data, not both');
  if (insecure && (caFile || caData)) {
    fail(`${kf}.insecure-skip-tls-verify`, 'cannot be combined with a certificate authority (certificate-authority or -data)');
  }
  const servername = optString(cluster, 'tls-server-name', kf, fail);
  const ca = caData !== undefined ? base64(caData, `${kf}.certificate-authority-data`, fail) : undefined;
  const caPath = caFile !== undefined ? rel(caFile) : undefined;

  // user (a context without a user means anonymous)
  let user: PlainObject = {};
  const uf = `users[name=${userName}].user`;
  if (userName !== undefined) user = named(doc, 'users', 'user', userName, fail);
  if (user.exec !== undefined) {
    fail(`${uf}.exec`, 'exec credential plugins are not supported; use a token, a token file or a client certificate');
  }
  if (user['auth-provider'] !== undefined) {
    fail(`${uf}.auth-provider`, 'auth-provider plugins are not supported; use a token, a token file or a client certificate');
  }
  const token = optString(user, 'token', uf, fail);
  const tokenFile = optString(user, 'tokenFile', uf, fail);
  const username = optString(user, 'username', uf, fail);
  const password = optString(user, 'password', uf, fail);
  const certFile = optString(user, 'client-certificate', uf, fail);
  const certData = optString(user, 'client-certificate-data', uf, fail);
  const keyFile = optString(user, 'client-key', uf, fail);
  const keyData = optString(user, 'client-key-data', uf, fail);
  if (certFile && certData) fail(`${uf}.client-certificate-data`, 'set either client-certificate or client-certificate-data, not both');
  if (keyFile && keyData) fail(`${uf}.client-key-data`, 'set either client-key or client-key-data, not both');
  const hasCert = certFile !== undefined || certData !== undefined;
  const hasKey = keyFile !== undefined || keyData !== undefined;
  if (hasCert !== hasKey) {
    fail(hasCert ? `${uf}.client-key` : `${uf}.client-certificate`, `is missing (a client ${hasCert ? 'certificate needs its key' : 'key needs its certificate'})`);
  }
  if ((username === undefined) !== (password === undefined)) fail(`${uf}.${username === undefined ? 'username' : 'password'}`, 'is missing (basic auth needs both)');
  const cert = certData !== undefined ? base64(certData, `${uf}.client-certificate-data`, fail) : undefined;
  const key = keyData !== undefined ? base64(keyData, `${uf}.client-key-data`, fail) : undefined;
  if (server.protocol === 'http:' && hasCert) fail(`${kf}.server`, 'client certificates need an https:// server');
  const secret = token !== undefined ? 'token' : tokenFile !== undefined ? 'tokenFile' : username !== undefined ? 'username and password' : undefined;
  if (server.protocol === 'http:' && secret) {
    fail(
      `${kf}.server`,
      `${server.origin} is plain http: the ${secret} of ${uf} would cross the network readable by anyone on the path; credentials go only to an https:// server`,
    );
  }
  const transport: KubeTransport = server.protocol === 'http:' ? 'plain-http' : insecure ? 'unverified-tls' : 'verified';
  const transportWarning =
    transport === 'plain-http'
      ? `${kf}.server is ${server.origin} (plain http, anonymous): ShareMemory objects arrive unauthenticated and can be forged on the way`
      : transport === 'unverified-tls'
        ? `${kf}.insecure-skip-tls-verify is true: the API server's certificate is not checked, so anyone on the path to ${server.origin} can pose as it${secret ? `, read the ${secret}` : ''} and forge ShareMemory objects`
        : undefined;

  const connection = (): KubeConnection => {
    const headers: Record<string, string> = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    else if (tokenFile) headers.Authorization = `Bearer ${readToken(source, `${uf}.tokenFile`, rel(tokenFile))}`;
    else if (username !== undefined) headers.Authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    return {
      server,
      headers,
      tls: {
        ca: ca ?? (caPath ? readFile(source, `${kf}.certificate-authority`, caPath) : undefined),
        cert: cert ?? (certFile ? readFile(source, `${uf}.client-certificate`, rel(certFile)) : undefined),
        key: key ?? (keyFile ? readFile(source, `${uf}.client-key`, rel(keyFile)) : undefined),
        rejectUnauthorized: !insecure,
        servername,
      },
    };
  };
  connection(); // every referenced file must be readable now
  return { server, transport, ...(transportWarning ? { transportWarning } : {}), description: `${source} (context ${contextName})`, connection };
}

/** The entry `name` of the list `doc[list]` (entries {name, [inner]: {...}}). */
function named(doc: PlainObject, list: string, inner: string, name: string, fail: (f: string, r: string) => never): PlainObject {
  const entries = doc[list];
  if (entries !== undefined && entries !== null && !Array.isArray(entries)) fail(list, 'must be a list');
  const found = ((entries as unknown[] | undefined) ?? []).find((e) => isObject(e) && e.name === name);
  if (!found) return fail(list, `has no entry named ${JSON.stringify(name)}`);
  const body = (found as PlainObject)[inner];
  if (!isObject(body)) return fail(`${list}[name=${name}].${inner}`, 'is missing or not a mapping');
  return body;
}

function optString(obj: PlainObject, key: string, at: string, fail: (f: string, r: string) => never): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') return fail(`${at}.${key}`, 'must be a string');
  return v;
}

function base64(v: string, field: string, fail: (f: string, r: string) => never): Buffer {
  const compact = v.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) return fail(field, 'is not valid base64');
  const buf = Buffer.from(compact, 'base64');
  if (buf.length === 0) return fail(field, 'is empty');
  return buf;
}

/** The credentials the agent's config asks for ({kubeconfig: PATH} or {inCluster: true}). */
export function loadKubeCredentials(config: { kubeconfig?: string; inCluster: boolean }): KubeCredentials {
  if (config.inCluster) return loadInCluster();
  if (!config.kubeconfig) throw new KubeconfigError('kubernetes', 'kubeconfig', 'is not set (and inCluster is false)');
  return loadKubeconfig(config.kubeconfig);
}
