/**
 * PutObject / HeadObject without the SDK pipeline (backends/s3/direct.ts): what goes on the wire
 * is signed as the SDK's own signer signs it (s3rver does not check signatures, so a recording
 * server re-derives each one with @smithy/signature-v4), and the answers map to the same errors,
 * results and breaker behaviour as the SDK path's.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { SignatureV4 } from '@smithy/signature-v4';
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { S3Backend } from '../../backends/s3/s3-backend.ts';
import { DirectRequests, parseListPage } from '../../backends/s3/direct.ts';
import { TruncatedBodyError } from '../../backends/s3/retry.ts';
import { EtagChangedError } from '../../backends/s3/transport.ts';
import { isVfsError } from '../../src/vfs/errors.ts';
import { useS3Env, type S3Env } from './fixture.ts';

let env: S3Env;
useS3Env((e) => {
  env = e;
});

interface Seen {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** Records requests and answers each with `answer` (status, headers, body). */
async function recorder(answer: (s: Seen) => { status: number; headers?: Record<string, string>; body?: string }): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const srv = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers as Record<string, string>, body: Buffer.concat(chunks) };
      seen.push(s);
      const a = answer(s);
      res.writeHead(a.status, a.headers ?? {});
      res.end(a.body);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((r) => srv.close(() => r())),
  };
}

/** SHA-256 (keyed: HMAC) in the shape the SDK signer takes. */
class Sha256 {
  private readonly h: Hash | Hmac;
  constructor(secret?: unknown) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', secret as string | Uint8Array);
  }
  update(data: unknown): void {
    this.h.update(data as string | Uint8Array);
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(this.h.digest());
  }
}

/** The SDK signer's signature for a request as it arrived, over the headers it names as signed. */
async function sdkSignature(s: Seen, creds: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }, region: string): Promise<string> {
  const auth = s.headers.authorization ?? '';
  const signedNames = /SignedHeaders=([^,]+)/.exec(auth)?.[1]?.split(';') ?? [];
  const headers: Record<string, string> = {};
  for (const n of signedNames) if (n !== 'x-amz-date' && n !== 'x-amz-security-token') headers[n] = s.headers[n] as string;
  const amz = s.headers['x-amz-date'] as string;
  const date = new Date(`${amz.slice(0, 4)}-${amz.slice(4, 6)}-${amz.slice(6, 8)}T${amz.slice(9, 11)}:${amz.slice(11, 13)}:${amz.slice(13, 15)}Z`);
  const signer = new SignatureV4({ service: 's3', region, credentials: creds, sha256: Sha256, uriEscapePath: false, applyChecksum: false });
  const [host, port] = (headers.host as string).split(':');
  const q = s.url.indexOf('?');
  const query: Record<string, string> = {};
  if (q >= 0) for (const [k, v] of new URLSearchParams(s.url.slice(q + 1).replace(/\+/g, '%2B'))) query[k] = v;
  const signedReq = await signer.sign({
    method: s.method, protocol: 'http:', hostname: host as string, ...(port !== undefined ? { port: Number(port) } : {}), path: q >= 0 ? s.url.slice(0, q) : s.url, query, headers, body: s.body,
  }, { signingDate: date, unsignableHeaders: new Set(Object.keys(s.headers).filter((n) => !signedNames.includes(n))) });
  return /Signature=([0-9a-f]+)/.exec(signedReq.headers.authorization as string)?.[1] ?? '';
}

describe('direct PutObject / HeadObject', () => {
  it('signs as the SDK signer does (keys with spaces, unicode and reserved characters, metadata, session tokens)', async () => {
    const rec = await recorder((s) => (s.method === 'PUT' ? { status: 200, headers: { etag: '"abc"' } } : s.method === 'GET' ? { status: 403, body: '<Error><Code>AccessDenied</Code></Error>' } : { status: 404 }));
    try {
      const creds = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', sessionToken: 'tok/en+==' };
      for (const forcePathStyle of [true, false]) {
        // Virtual-hosted needs a host name to put the bucket in (an IP endpoint is left to the SDK).
        const endpoint = forcePathStyle ? rec.url : rec.url.replace('127.0.0.1', 's3.example.test');
        const b = new S3Backend({ bucket: 'bucket-1', prefix: 'pre fix', endpoint, region: 'eu-west-3', forcePathStyle, ...creds, maxAttempts: 1 });
        expect(b.transport.direct).toBeDefined();
        if (!forcePathStyle) {
          // No DNS for bucket-1.s3.example.test: connect to the server, keep the signed Host header.
          (b.transport.direct as DirectRequests).onRequest = (t) => {
            t.hostname = '127.0.0.1';
          };
        }
        for (const key of ['a/b c/ü+ä%~*\'()!$&=;:@,.txt', 'plain', 'x/  two  spaces ']) {
          await b.transport.put(key, Buffer.from(`body of ${key}`), { mode: '33188', 'Other-Tool': ' spaced  value ' }, { contentType: 'text/plain' });
          expect(await b.transport.head(key)).toBeUndefined();
          await b.transport.list(key, { delimiter: '/', startAfter: `${key} a+b=c&d`, maxKeys: 7 }).catch(() => undefined);
          await b.transport.list(key, { token: 'tok+en/=&x y' }).catch(() => undefined);
        }
        await b.close();
      }
      expect(rec.seen.length).toBe(24);
      const lists = rec.seen.filter((x) => x.method === 'GET');
      expect(lists.length).toBe(12);
      expect(lists[0]?.url).toMatch(/^\/bucket-1\?/);
      expect(lists.find((x) => x.headers.host?.startsWith('bucket-1.'))?.url).toMatch(/^\/\?/);
      expect(new URLSearchParams((lists[1]?.url ?? '').split('?')[1]).get('continuation-token')).toBe('tok+en/=&x y');
      for (const s of rec.seen) {
        const mine = /Signature=([0-9a-f]+)/.exec(s.headers.authorization ?? '')?.[1];
        expect(mine).toBe(await sdkSignature(s, creds, 'eu-west-3'));
        expect(s.headers['x-amz-security-token']).toBe('tok/en+==');
      }
      const vhost = rec.seen.filter((s) => s.headers.host?.startsWith('bucket-1.') && s.method !== 'GET');
      expect(vhost.length).toBe(6);
      expect(vhost[0]?.url).toBe('/a/b%20c/%C3%BC%2B%C3%A4%25~%2A%27%28%29%21%24%26%3D%3B%3A%40%2C.txt');
      expect(rec.seen[0]?.url).toBe('/bucket-1/a/b%20c/%C3%BC%2B%C3%A4%25~%2A%27%28%29%21%24%26%3D%3B%3A%40%2C.txt');
      // Over plain http the payload is signed (its only integrity check).
      const put = rec.seen.find((s) => s.method === 'PUT') as Seen;
      expect(put.headers['x-amz-content-sha256']).toMatch(/^[0-9a-f]{64}$/);
      expect(put.headers['x-amz-meta-other-tool']?.trim()).toBe('spaced  value');
      expect(put.headers['content-type']).toBe('text/plain');
    } finally {
      await rec.close();
    }
  });

  it('answers map like the SDK path: 403 EACCES, 412 EEXIST, 501 ENOTSUP without opening the breaker, 503 retried, 200 with an error document retried', async () => {
    let mode = '403';
    let n = 0;
    const rec = await recorder(() => {
      n++;
      if (mode === '503') return n % 2 === 1 ? { status: 503, body: '<Error><Code>SlowDown</Code><Message>slow</Message></Error>' } : { status: 200, headers: { etag: '"e"' } };
      if (mode === '200err') return n % 2 === 1 ? { status: 200, body: '<?xml version="1.0"?><Error><Code>InternalError</Code></Error>' } : { status: 200, headers: { etag: '"e2"' } };
      const status = Number(mode);
      const code = status === 403 ? 'AccessDenied' : status === 412 ? 'PreconditionFailed' : 'NotImplemented';
      return { status, body: `<?xml version="1.0"?><Error><Code>${code}</Code><Message>m &amp; m</Message></Error>` };
    });
    try {
      const b = new S3Backend({ bucket: 'b', prefix: 'p', endpoint: rec.url, accessKeyId: 'a', secretAccessKey: 's', retryBaseMs: 1, retryMaxMs: 2, circuitFailureThreshold: 2 });
      await expect(b.transport.put('k', Buffer.from('x'), {})).rejects.toSatisfy((e) => isVfsError(e, 'EACCES'));
      mode = '412';
      await expect(b.transport.put('k', Buffer.from('x'), {}, { ifNoneMatch: true })).rejects.toSatisfy((e) => isVfsError(e, 'EEXIST'));
      mode = '501';
      for (let i = 0; i < 3; i++) await expect(b.transport.put('k', Buffer.from('x'), {})).rejects.toSatisfy((e) => isVfsError(e, 'ENOTSUP'));
      expect(b.transport.breaker.state).toBe('closed');
      mode = '503';
      n = 0;
      expect(await b.transport.put('k', Buffer.from('x'), {})).toBe('"e"');
      mode = '200err';
      n = 0;
      expect(await b.transport.put('k', Buffer.from('x'), {})).toBe('"e2"');
      expect(b.meters.local.retries).toBe(2);
      await b.close();
    } finally {
      await rec.close();
    }
  });

  it('a skewed clock: RequestTimeTooSkewed with the server Date corrects the signing clock (shared with the SDK client)', async () => {
    const ahead = 3_600_000;
    const serverDate = (): string => new Date(Date.now() + ahead).toUTCString();
    let first = true;
    const rec = await recorder((): { status: number; headers: Record<string, string>; body?: string } => {
      if (first) {
        first = false;
        return { status: 403, headers: { date: serverDate() }, body: '<Error><Code>RequestTimeTooSkewed</Code><Message>skewed</Message></Error>' };
      }
      return { status: 200, headers: { date: serverDate(), etag: '"ok"' } };
    });
    try {
      const b = new S3Backend({ bucket: 'b', prefix: 'p', endpoint: rec.url, accessKeyId: 'a', secretAccessKey: 's', maxAttempts: 1 });
      await expect(b.transport.put('k', Buffer.from('x'), {})).rejects.toSatisfy((e) => isVfsError(e, 'EACCES'));
      expect(await b.transport.put('k', Buffer.from('x'), {})).toBe('"ok"');
      const amz = (s: Seen): number => {
        const d = s.headers['x-amz-date'] as string;
        return Date.parse(`${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}T${d.slice(9, 11)}:${d.slice(11, 13)}:${d.slice(13, 15)}Z`);
      };
      const [s1, s2] = rec.seen as [Seen, Seen];
      expect(Math.abs(amz(s1) - Date.now())).toBeLessThan(60_000);
      expect(Math.abs(amz(s2) - (Date.now() + ahead))).toBeLessThan(60_000);
      expect(Math.abs((b.transport.client.config.systemClockOffset ?? 0) - ahead)).toBeLessThan(60_000);
      await b.close();
    } finally {
      await rec.close();
    }
  });

  it('against s3rver: the same object, metadata and content type as an SDK HEAD sees; misses and connection failures', async () => {
    const b = env.backend();
    expect(b.transport.direct).toBeDefined();
    const key = `${b.keys.prefix}dir/ü ä+%&=?#!*()~/k`;
    const etag = await b.transport.put(key, Buffer.from('hello'), { mode: '33188', 'x-y': 'a b' });
    const raw = await env.raw.send(new HeadObjectCommand({ Bucket: env.s3.bucket, Key: key }));
    expect(etag).toBe(raw.ETag);
    const h = await b.transport.head(key);
    expect(h).toEqual({ size: 5, etag: raw.ETag, lastModified: raw.LastModified, meta: raw.Metadata, contentType: raw.ContentType });
    expect(raw.ContentType).toBe('application/octet-stream');
    expect(await b.transport.head(`${key}-missing`)).toBeUndefined();
    const before = env.proxy.log.length;
    env.proxy.inject({ kind: 'drop', match: (r) => r.op === 'PutObject' });
    expect(await b.transport.put(key, Buffer.from('again'), {})).toMatch(/^"/);
    expect(env.proxy.log.slice(before).filter((r) => r.op === 'PutObject').length).toBe(2);
  });

  it('ListObjectsV2 answers as the SDK parses them: odd names, delimiters, paging by token and start-after', async () => {
    const b = env.backend();
    const pre = `${b.keys.prefix}list/`;
    const names = ['a', 'a b', 'a&b<c>"d\'', 'a+b', 'a-b', 'a.b', 'a/x', 'a/y/z', 'b%2F', 'ü', '日本', '😀 x', 'z/'];
    for (const n of names) await env.rawPut(pre + n, n);
    const sdkList = async (o: { delimiter?: string; token?: string; startAfter?: string; maxKeys?: number }): Promise<unknown> => {
      const r = await env.raw.send(new ListObjectsV2Command({
        Bucket: env.s3.bucket, Prefix: pre, MaxKeys: o.maxKeys ?? 1000,
        ...(o.delimiter !== undefined ? { Delimiter: o.delimiter } : {}),
        ...(o.token !== undefined ? { ContinuationToken: o.token } : o.startAfter !== undefined ? { StartAfter: o.startAfter } : {}),
      }));
      return {
        keys: (r.Contents ?? []).map((c) => ({ key: c.Key ?? '', size: c.Size ?? 0, etag: c.ETag ?? '', lastModified: c.LastModified })),
        prefixes: (r.CommonPrefixes ?? []).map((p) => p.Prefix ?? '').filter((p) => p !== ''),
        truncated: r.IsTruncated === true,
        token: r.NextContinuationToken,
      };
    };
    for (const o of [{}, { delimiter: '/' }, { startAfter: `${pre}a.b` }, { delimiter: '/', startAfter: `${pre}a+b` }]) {
      expect(await b.transport.list(pre, o)).toEqual(await sdkList(o));
    }
    // Paging by token, two at a time: the same pages, and every name once.
    let token: string | undefined;
    const seen: string[] = [];
    for (let i = 0; i < 20; i++) {
      const mine = await b.transport.list(pre, { maxKeys: 2, token });
      expect(mine).toEqual(await sdkList({ maxKeys: 2, ...(token !== undefined ? { token } : {}) }));
      seen.push(...mine.keys.map((k) => k.key.slice(pre.length)));
      if (!mine.truncated) break;
      token = mine.token;
    }
    expect(seen).toEqual([...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
    // A listing cut mid-body is retried and comes back whole.
    env.proxy.inject({ kind: 'truncate', bytes: 300, match: (r) => r.op === 'ListObjectsV2' });
    const retries = b.meters.local.retries;
    expect((await b.transport.list(pre, {})).keys.length).toBe(names.length);
    expect(b.meters.local.retries).toBe(retries + 1);
  });

  it('parseListPage: entities (named and numeric), a cut document, an error-free empty page', () => {
    const doc = '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>'
      + '<Contents><Key>a&amp;&lt;&#x1;&#233;&#x1F600;</Key><LastModified>2026-01-02T03:04:05.000Z</LastModified><ETag>&quot;e&quot;</ETag><Size>12</Size><Owner><ID>x</ID></Owner></Contents>'
      + '<CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes><IsTruncated>true</IsTruncated><NextContinuationToken>t&amp;1</NextContinuationToken></ListBucketResult>';
    expect(parseListPage(doc)).toEqual({
      keys: [{ key: 'a&<\u0001é😀', size: 12, etag: '"e"', lastModified: new Date('2026-01-02T03:04:05.000Z') }],
      prefixes: ['p/'], truncated: true, token: 't&1',
    });
    expect(() => parseListPage(doc.slice(0, 200))).toThrow(TruncatedBodyError);
    expect(() => parseListPage('<Error><Code>X</Code></Error>')).toThrow(TruncatedBodyError);
    expect(parseListPage('<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>\n')).toEqual({ keys: [], prefixes: [], truncated: false, token: undefined });
  });

  it('is not used without an endpoint, nor for a bucket the SDK would not put in the host name', () => {
    expect(DirectRequests.usable(undefined, 'b', false)).toBe(false);
    expect(DirectRequests.usable('http://127.0.0.1:9000', 'my.bucket', false)).toBe(false);
    expect(DirectRequests.usable('http://127.0.0.1:9000', 'my.bucket', true)).toBe(true);
    expect(DirectRequests.usable('http://127.0.0.1:9000', 'Upper', false)).toBe(false);
    expect(DirectRequests.usable('http://127.0.0.1:9000', 'bucket', false)).toBe(false);
    expect(DirectRequests.usable('http://[::1]:9000', 'bucket', false)).toBe(false);
    expect(DirectRequests.usable('http://s3.local:9000', 'bucket', false)).toBe(true);
  });
});

describe('direct GetObject', () => {
  it('signs as the SDK signer does, the Range header included (path style and virtual-hosted, session token)', async () => {
    const body = 'hello, world';
    const rec = await recorder((s): { status: number; headers: Record<string, string>; body: string } => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(s.headers.range ?? '');
      if (m === null) return { status: 200, headers: { etag: '"g"', 'content-length': String(body.length) }, body };
      const a = Number(m[1]);
      const z = Math.min(body.length - 1, Number(m[2]));
      return { status: 206, headers: { etag: '"g"', 'content-range': `bytes ${a}-${z}/${body.length}`, 'content-length': String(z - a + 1), 'last-modified': 'Mon, 07 Dec 2026 10:00:00 GMT', 'x-amz-meta-mode': '33188', 'content-type': 'text/plain' }, body: body.slice(a, z + 1) };
    });
    try {
      const creds = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', sessionToken: 'tok/en+==' };
      for (const forcePathStyle of [true, false]) {
        const endpoint = forcePathStyle ? rec.url : rec.url.replace('127.0.0.1', 's3.example.test');
        const b = new S3Backend({ bucket: 'bucket-1', prefix: 'pre fix', endpoint, region: 'eu-west-3', forcePathStyle, ...creds, maxAttempts: 1 });
        if (!forcePathStyle) {
          (b.transport.direct as DirectRequests).onRequest = (t) => {
            t.hostname = '127.0.0.1';
          };
        }
        for (const key of ['a/b c/ü+ä%~*\'()!$&=;:@,.txt', 'plain']) {
          expect((await b.transport.getRange(key, 7, 12, '"g"')).toString()).toBe('world');
          const got = await b.transport.getWithHead(key, 0, 4 * 1024 * 1024);
          expect(got?.data.toString()).toBe(body);
          expect(got?.head).toEqual({ size: body.length, etag: '"g"', lastModified: new Date('2026-12-07T10:00:00Z'), meta: { mode: '33188' }, contentType: 'text/plain' });
        }
        await b.close();
      }
      expect(rec.seen.length).toBe(8);
      expect(rec.seen[0]?.headers.range).toBe('bytes=7-11');
      expect(rec.seen[1]?.headers.range).toBe(`bytes=0-${4 * 1024 * 1024 - 1}`);
      for (const s of rec.seen) {
        expect(s.method).toBe('GET');
        expect(s.headers.authorization).toMatch(/SignedHeaders=[^,]*\brange\b/);
        expect(/Signature=([0-9a-f]+)/.exec(s.headers.authorization ?? '')?.[1]).toBe(await sdkSignature(s, creds, 'eu-west-3'));
      }
    } finally {
      await rec.close();
    }
  });

  it('against s3rver: the bytes and head an SDK GetObject sees; 404, 416, a changed ETag, a cut body retried', async () => {
    const b = env.backend();
    expect(b.transport.direct).toBeDefined();
    const key = `${b.keys.prefix}g/ü ä+%&=?#!*()~/k`;
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 255;
    const etag = await b.transport.put(key, data, { mode: '33188', 'x-y': 'a b' }, { contentType: 'application/x-test' });
    const raw = await env.raw.send(new GetObjectCommand({ Bucket: env.s3.bucket, Key: key, Range: 'bytes=1000-70999' }));
    const rawBytes = Buffer.from(await raw.Body!.transformToByteArray());
    const mine = await b.transport.getRange(key, 1000, 71_000, etag);
    expect(mine.equals(rawBytes)).toBe(true);
    expect(mine.equals(data.subarray(1000, 71_000))).toBe(true);
    // Pieces: one GET, every piece exact.
    const pieces = await b.transport.getPieces(key, 0, data.length, 65_536, etag);
    expect(pieces.length).toBe(5);
    expect(Buffer.concat(pieces).equals(data)).toBe(true);
    const h = await b.transport.getWithHead(key, 0, 128 * 1024);
    expect(h?.data.equals(data.subarray(0, 128 * 1024))).toBe(true);
    expect(h?.head).toEqual({ size: data.length, etag: raw.ETag, lastModified: raw.LastModified, meta: raw.Metadata, contentType: raw.ContentType });
    expect(raw.ContentType).toBe('application/x-test');
    // The range runs past the end: what there is.
    expect((await b.transport.getWithHead(key, 256 * 1024, 384 * 1024))?.data.equals(data.subarray(256 * 1024))).toBe(true);
    expect(await b.transport.getWithHead(`${key}-missing`, 0, 10)).toBeUndefined();
    await expect(b.transport.getRange(`${key}-missing`, 0, 10, undefined)).rejects.toSatisfy((e) => isVfsError(e, 'ENOENT'));
    await expect(b.transport.getWithHead(key, data.length + 10, data.length + 20)).rejects.toSatisfy((e) => isVfsError(e, 'EINVAL'));
    await expect(b.transport.getRange(key, 0, 10, '"other"')).rejects.toBeInstanceOf(EtagChangedError);
    // A body cut mid-way is retried; the pieces delivered before stay, the rest is asked again.
    const retries = b.meters.local.retries;
    env.proxy.inject({ kind: 'truncate', bytes: 100_000, match: (r) => r.op === 'GetObject' });
    const again = await b.transport.getPieces(key, 0, data.length, 65_536, etag);
    expect(Buffer.concat(again).equals(data)).toBe(true);
    expect(b.meters.local.retries).toBe(retries + 1);
    env.proxy.inject({ kind: 'truncate', bytes: 1000, match: (r) => r.op === 'GetObject' });
    expect((await b.transport.getWithHead(key, 0, 128 * 1024))?.data.equals(data.subarray(0, 128 * 1024))).toBe(true);
    expect(b.meters.local.retries).toBe(retries + 2);
  });

  it('a read of a file nothing is known about is one GET (no HEAD), its stat the one a HEAD gives; misses and directories as before', async () => {
    const b = env.backend();
    const data = Buffer.from('small file content');
    await env.rawPut(`${b.keys.prefix}d/f.txt`, data, { mode: String(0o100600), mtime: '1700000000.123456789' });
    await env.rawPut(`${b.keys.prefix}d/big`, Buffer.alloc(300 * 1024, 7));
    env.proxy.resetLog();
    expect((await b.read('/d/f.txt', 0, 1 << 20)).equals(data)).toBe(true);
    expect(env.proxy.count('GetObject')).toBe(1);
    expect(env.proxy.count('HeadObject')).toBe(0);
    // The lookup is cached: stat and a second read cost nothing.
    const st = await b.stat('/d/f.txt');
    expect((await b.read('/d/f.txt', 6, 4)).toString()).toBe('file');
    expect(env.proxy.log.length).toBe(1);
    const other = env.backend({ prefix: b.keys.prefix.replace(/\/$/, '') });
    expect(st).toEqual(await other.stat('/d/f.txt'));
    expect(st.mode).toBe(0o600);
    expect(st.mtimeNs).toBe(1_700_000_000_123_456_789n);
    // A random read inside one page of a larger file: that page's GET, no HEAD.
    env.proxy.resetLog();
    expect((await b.read('/d/big', 200 * 1024, 100)).equals(Buffer.alloc(100, 7))).toBe(true);
    expect(env.proxy.count('GetObject')).toBe(1);
    expect(env.proxy.count('HeadObject')).toBe(0);
    expect((await b.stat('/d/big')).size).toBe(300 * 1024);
    // Missing: the GET's 404, then the directory probe (no HEAD of the same key).
    env.proxy.resetLog();
    await expect(b.read('/d/nope', 0, 10)).rejects.toSatisfy((e) => isVfsError(e, 'ENOENT'));
    expect(env.proxy.log.map((r) => r.op)).toEqual(['GetObject', 'ListObjectsV2']);
    await expect(b.read('/d', 0, 10)).rejects.toSatisfy((e) => isVfsError(e, 'EISDIR'));
    // An empty object (416 or an empty answer, depending on the store): read as empty.
    await env.rawPut(`${b.keys.prefix}d/empty`, Buffer.alloc(0));
    expect((await b.read('/d/empty', 0, 10)).length).toBe(0);
    expect((await b.stat('/d/empty')).size).toBe(0);
  });
});
