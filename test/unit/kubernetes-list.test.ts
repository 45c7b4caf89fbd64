// A list page read as it streams (plugin/kube/list.ts): whatever the chunking, the items are those
// JSON.parse finds; an item past the cap is named, not read; a broken page is refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough } from 'node:stream';
import type * as http from 'node:http';
import { readListPage, type ListItem, type ListPage } from '../../plugin/kube';

/** A response whose body arrives in chunks of `size` bytes (a stream with IncomingMessage's `complete`). */
function response(body: string | Buffer, size: number): http.IncomingMessage {
  const s = new PassThrough() as PassThrough & { complete: boolean };
  s.complete = false;
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
  setImmediate(() => {
    for (let i = 0; i < buf.length; i += size) s.write(buf.subarray(i, i + size));
    s.complete = true;
    s.end();
  });
  return s as unknown as http.IncomingMessage;
}

async function read(body: string, size: number, maxItemBytes = 1 << 20): Promise<{ page: ListPage; items: ListItem[] }> {
  const items: ListItem[] = [];
  const page = await readListPage(response(body, size), { where: 'kubernetes test', timeoutMs: 5000, maxItemBytes }, (i) => items.push(i));
  return { page, items };
}

// strings that end on a backslash, hold escaped quotes, \u escapes, multi-byte characters, and keys
// named like the page's own ("items", "metadata") deeper down
const tricky = {
  apiVersion: 'v1',
  kind: 'ShareMemoryList',
  metadata: { resourceVersion: '42', continue: 'tok"en\\', remainingItemCount: 3 },
  items: [
    { metadata: { name: 'a\\', namespace: 'ns"1', annotations: { x: '\\\\"}]{[', items: ['not', 'these'] } }, spec: { storage: '1Gi' } },
    { metadata: { name: 'b\u00e9\u2603', namespace: 'ns2' }, spec: { metadata: { items: [] } }, extra: [1, 2.5e3, true, null, { '': '' }] },
    'a string item',
    17,
    null,
    { metadata: { namespace: 'ns3', name: 'last' } },
  ],
  trailer: { items: 'ignored' },
};

test('items are what JSON.parse gives, for every chunk size', async () => {
  const text = JSON.stringify(tricky, null, 1);
  for (const size of [1, 2, 3, 7, 64, 1 << 20]) {
    const { page, items } = await read(text, size);
    assert.equal(page, { resourceVersion: '42', continue: 'tok"en\\' }, `chunk ${size}`);
    assert.equal(items, tricky.items.map((object) => ({ object })), `chunk ${size}`);
  }
});

test('an item past the cap is named, not read; the items around it are read', async () => {
  const big = { metadata: { annotations: { filler: 'y'.repeat(5000) }, namespace: 'tenant', name: 'big\\"one' }, spec: {} };
  const text = JSON.stringify({ metadata: { resourceVersion: '7' }, items: [{ a: 1 }, big, { b: 2 }] });
  for (const size of [1, 13, 4096]) {
    const { items } = await read(text, size, 1000);
    assert.is(items.length, 3);
    assert.equal(items[0], { object: { a: 1 } });
    assert.equal(items[2], { object: { b: 2 } });
    const t = (items[1] as { tooLarge: { bytes: number; namespace?: string; name?: string } }).tooLarge;
    assert.equal([t.namespace, t.name], ['tenant', 'big\\"one']);
    assert.ok(t.bytes > 1000, String(t.bytes));
  }
});

test('a broken page is refused with the reason, naming the server', async () => {
  const cases: Array<[string, RegExp]> = [
    ['{"metadata":{"resourceVersion":"1"},"items":[{"a":1}', /^kubernetes test: list: the response is not JSON$/],
    ['{"metadata":{"resourceVersion":"1"},"items":[{"a":1]]}', /^kubernetes test: list: the response is not JSON$/],
    ['{"metadata":{"resourceVersion":"1"},"items":[{"a":tru}]}', /^kubernetes test: list: the response is not JSON$/],
    ['{"metadata":{"resourceVersion":"1"}}', /^kubernetes test: list: the response has no items$/],
    ['[]', /^kubernetes test: list: the response has no items$/],
    ['{"metadata":{},"items":[]}', /^kubernetes test: list: the response has no metadata.resourceVersion$/],
    ['{"metadata":{"resourceVersion":"1"},"items":[]} {}', /^kubernetes test: list: the response is not a list \(more after the end of the list\)$/],
    [`{"metadata":{"resourceVersion":"1"},"items":[${'['.repeat(200)}${']'.repeat(200)}]}`, /nested deeper than 100 levels/],
  ];
  for (const [body, re] of cases) {
    const err = await read(body, 5).then(() => undefined, (e: Error) => e);
    assert.ok(err, `refused: ${body.slice(0, 60)}`);
    assert.match(err!.message, re);
  }
});

test('the page metadata is bounded: a huge one is refused, not kept', async () => {
  const body = JSON.stringify({ metadata: { resourceVersion: '1', pad: 'z'.repeat(100 * 1024) }, items: [] });
  const err = await read(body, 4096).then(() => undefined, (e: Error) => e);
  assert.match(err?.message ?? '', /the list's metadata is larger than 65536 bytes/);
});

test.run();
