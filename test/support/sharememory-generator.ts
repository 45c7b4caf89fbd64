// STANDS IN for a kube-apiserver holding many ShareMemory objects of the largest size the CRD
// allows, which no real API server here can hold (100,000 objects of some 300 KiB are 30 GB; etcd's
// default quota is 2 GiB). It follows the list protocol a client sees (GET .../sharememories with
// limit and continue: {kind: ShareMemoryList, metadata: {resourceVersion, continue?}, items}) and
// writes each page as it generates it, object by object with backpressure, so the generator itself
// holds one object at a time. A watch gets a 200 stream that stays open and empty until
// timeoutSeconds. Nothing else (no writes, no auth: anonymous over http).
//
// The largest object the CRD allows (packaging/kubernetes/crd-sharememory.yaml): 256 allowedNamespaces
// and 256 readOnlyNamespaces of 63 characters each, and annotations of 256 KiB in all (the API
// server's limit on annotations, keys and values together). Namespace names are drawn from a pool
// (a cluster's namespaces), each object granting 512 different ones.
import * as http from 'node:http';

export const MAX_CRD_NAMESPACES = 256;
export const MAX_NAMESPACE_LENGTH = 63;
export const MAX_ANNOTATIONS_BYTES = 256 * 1024;

export interface GeneratorOptions {
  /** objects held */
  count: number;
  /** distinct namespace names granted across objects (default 5000) */
  namespacePool?: number;
  /** namespaces the objects live in (default 1000) */
  tenants?: number;
}

const pad = (n: number, w: number) => String(n).padStart(w, '0');
/** A 63-character namespace name. */
export const poolNamespace = (i: number): string => `ns-${pad(i, 6)}-`.padEnd(MAX_NAMESPACE_LENGTH, 'x');

export class ShareMemoryGenerator {
  private server: http.Server | undefined;
  private readonly pool: number;
  private readonly tenants: number;
  private readonly annotation: string;
  /** pages served, objects written, bytes written */
  readonly served = { pages: 0, objects: 0, bytes: 0 };

  constructor(private readonly o: GeneratorOptions) {
    this.pool = o.namespacePool ?? 5000;
    this.tenants = o.tenants ?? 1000;
    const key = 'example.com/filler';
    // keys and values together at the limit
    this.annotation = 'a'.repeat(MAX_ANNOTATIONS_BYTES - key.length);
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as { port: number }).port}`;
  }

  /** Object i, as its JSON text. */
  object(i: number): string {
    const grant = (from: number) =>
      Array.from({ length: MAX_CRD_NAMESPACES }, (_, j) => `"${poolNamespace((i * 7 + from + j) % this.pool)}"`).join(',');
    const namespace = `tenant-${pad(i % this.tenants, 4)}`;
    return (
      `{"apiVersion":"resource.ubsvirt.huawei.com/v1","kind":"ShareMemory","metadata":{"name":"share-${pad(i, 6)}","namespace":"${namespace}",` +
      `"resourceVersion":"${i + 2}","uid":"00000000-0000-4000-8000-${pad(i, 12)}","annotations":{"example.com/filler":"${this.annotation}"}},` +
      `"spec":{"storage":"1Gi","allowedNamespaces":[${grant(0)}],"readOnlyNamespaces":[${grant(MAX_CRD_NAMESPACES)}]}}`
    );
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/apis/resource.ubsvirt.huawei.com/v1/sharememories') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 page not found\n');
      return;
    }
    const rv = String(this.o.count + 2);
    if (url.searchParams.get('watch')) {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
      res.flushHeaders();
      const t = setTimeout(() => res.end(), Number(url.searchParams.get('timeoutSeconds') ?? 300) * 1000);
      req.on('close', () => clearTimeout(t));
      return;
    }
    const limit = Number(url.searchParams.get('limit') ?? 0) || this.o.count;
    const from = url.searchParams.get('continue') ? Number(Buffer.from(url.searchParams.get('continue')!, 'base64url').toString()) : 0;
    const to = Math.min(this.o.count, from + limit);
    const meta = to < this.o.count ? `{"resourceVersion":"${rv}","continue":"${Buffer.from(String(to)).toString('base64url')}"}` : `{"resourceVersion":"${rv}"}`;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    this.served.pages++;
    const write = async (s: string) => {
      this.served.bytes += s.length;
      if (!res.write(s)) await new Promise<void>((r) => res.once('drain', r));
    };
    await write(`{"apiVersion":"resource.ubsvirt.huawei.com/v1","kind":"ShareMemoryList","metadata":${meta},"items":[`);
    for (let i = from; i < to; i++) {
      if (res.destroyed) return;
      await write(`${i > from ? ',' : ''}${this.object(i)}`);
      this.served.objects++;
    }
    res.end(']}');
  }
}
