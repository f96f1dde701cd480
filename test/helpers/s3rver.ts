/**
 * A real S3-compatible server for tests: s3rver (HTTP, files in a temporary directory) on a free
 * 127.0.0.1 port. stop() closes it and removes the directory.
 *
 * s3rver 3.7 falls short of S3 in ways that would make correct clients fail, so four store/route
 * behaviours are brought in line with S3's documented API here (nothing else is touched; requests
 * still go over HTTP, signed, through s3rver's own router and XML layer):
 *
 * 1. ListObjectsV2 order: s3rver walks its directory tree, which lists `a/x` before `a-b` and `a`;
 *    S3 lists keys in UTF-8 byte order. Pages were also cut in that walk order, so a continuation
 *    could skip keys, and a directory holding only subdirectories was not reported as a common
 *    prefix. Keys are now collected, sorted by UTF-8 bytes, then paged (s3rver's paging rules kept:
 *    MaxKeys counts objects, continuation after the last object).
 * 2. Atomic PUT: s3rver wrote the object file in place, so a reader could see half a new body
 *    under the old ETag. Bodies now go to a temporary file renamed into place, and the rename plus
 *    metadata update and a GET's metadata read plus file open are serialised per key (an open
 *    descriptor keeps reading the version it opened, as on S3).
 * 3. ListMultipartUploads (GET /bucket?uploads) and 4. AbortMultipartUpload (DELETE
 *    /bucket/key?uploadId=): answered NotImplemented / MethodNotAllowed; implemented over s3rver's
 *    own upload directories.
 * 6. CopyObject with MetadataDirective REPLACE kept the destination's old MD5, so the copy reported
 *    the ETag of the content it replaced. The copy now carries the source's MD5 (and is atomic).
 * 5. ListObjectsV2 continuation tokens: s3rver encrypts them with DES, which OpenSSL 3 (every
 *    Node since 17) refuses, so any truncated V2 listing was a 500. V2 listings are answered here
 *    with S3's paging rules (MaxKeys counts keys and common prefixes; the opaque token resumes
 *    after the last key or prefix returned).
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, readdirSync, rmSync, type Dirent } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';

const require = createRequire(import.meta.url);

interface S3Object {
  bucket: string;
  key: string;
  content: Readable | Buffer;
  metadata: Record<string, string>;
}

interface FilesystemStore {
  getBucketPath(bucket: string): string;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  getMetadata(bucket: string, key: string): Promise<Record<string, string>>;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5?: string): Promise<void>;
  putObject(object: S3Object): Promise<{ size: number; md5: string }>;
  getObject(bucket: string, key: string, options?: unknown): Promise<unknown>;
  copyObject(srcBucket: string, srcKey: string, destBucket: string, destKey: string, replacement: Record<string, string> | null): Promise<unknown>;
  deleteObject(bucket: string, key: string): Promise<void>;
  listObjects(bucket: string, options: ListOptions): Promise<unknown>;
}

interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | undefined>;
  status: number;
  body: unknown;
  type: string;
  set(name: string, value: string): void;
}

interface S3rverInstance {
  store: FilesystemStore;
  httpServer?: { closeAllConnections(): void };
  middleware: ((ctx: KoaContext, next: () => Promise<void>) => Promise<void>)[];
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}

type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;
const S3rver = require('s3rver') as S3rverClass;
const S3ObjectModel = require('s3rver/lib/models/object.js') as new (bucket: string, key: string, content: null, metadata: Record<string, string>) => unknown;

interface ListOptions {
  delimiter?: string;
  startAfter?: string;
  prefix?: string;
  maxKeys?: number;
}

export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface S3rverHandle {
  endpoint: string;
  port: number;
  bucket: string;
  /** Where s3rver keeps its files. */
  dir: string;
  /** A raw SDK client for the test's own checks (path-style, s3rver credentials). */
  client(endpoint?: string): S3Client;
  stop(): Promise<void>;
}

const OBJECT_SUFFIX = '._S3rver_object';
const UPLOADS_DIR = '._S3rver_uploads';

function utf8Compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function xml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Per-key serialisation inside the store. */
function keyLock(): <T>(key: string, fn: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<unknown>>();
  return async <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const prev = tails.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    tails.set(key, tail);
    try {
      return await run;
    } finally {
      if (tails.get(key) === tail) tails.delete(key);
    }
  };
}

function patchStore(store: FilesystemStore): void {
  const lock = keyLock();
  const origGet = store.getObject.bind(store);
  const origDelete = store.deleteObject.bind(store);
  store.getObject = (bucket, key, options) => lock(`${bucket}/${key}`, () => origGet(bucket, key, options));
  store.copyObject = (srcBucket: string, srcKey: string, destBucket: string, destKey: string, replacement: Record<string, string> | null) =>
    lock(`${destBucket}/${destKey}`, async () => {
      const src = store.getResourcePath(srcBucket, srcKey, 'object');
      const dst = store.getResourcePath(destBucket, destKey, 'object');
      if (src !== dst) {
        await mkdir(dirname(dst), { recursive: true });
        const tmp = `${dst}.incoming-${randomBytes(6).toString('hex')}`;
        await copyFile(src, tmp);
        await copyFile(`${src}.md5`, `${dst}.md5`).catch(() => undefined);
        if (replacement === null) await copyFile(store.getResourcePath(srcBucket, srcKey, 'metadata.json'), store.getResourcePath(destBucket, destKey, 'metadata.json')).catch(() => undefined);
        await rename(tmp, dst);
      }
      if (replacement !== null) await store.putMetadata(destBucket, destKey, replacement);
      return store.getMetadata(destBucket, destKey);
    });
  store.deleteObject = (bucket, key) => lock(`${bucket}/${key}`, () => origDelete(bucket, key));

  store.putObject = async function putObject(object: S3Object) {
    const objectPath = store.getResourcePath(object.bucket, object.key, 'object');
    await mkdir(dirname(objectPath), { recursive: true });
    // Not ending in the object suffix: listings ignore it while it is being written.
    const tmp = `${objectPath}.incoming-${randomBytes(6).toString('hex')}`;
    const md5 = createHash('md5');
    let size = 0;
    const out = createWriteStream(tmp);
    try {
      if (Buffer.isBuffer(object.content)) {
        md5.update(object.content);
        size = object.content.length;
        out.end(object.content);
      } else {
        for await (const chunk of object.content as AsyncIterable<Buffer>) {
          md5.update(chunk);
          size += chunk.length;
          if (!out.write(chunk)) await once(out, 'drain');
        }
        out.end();
      }
      await once(out, 'finish');
    } catch (e) {
      out.destroy();
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    const digest = md5.digest('hex');
    await lock(`${object.bucket}/${object.key}`, async () => {
      await rename(tmp, objectPath);
      await store.putMetadata(object.bucket, object.key, object.metadata, digest);
    });
    return { size, md5: digest };
  };

  store.listObjects = async function listObjects(bucket: string, options: ListOptions) {
    const { delimiter = '', startAfter = '', prefix = '', maxKeys = Infinity } = options;
    const keys = await sortedKeys(store, bucket, prefix);
    const objects: string[] = [];
    const prefixes = new Set<string>();
    let isTruncated = false;
    for (const key of keys) {
      if (utf8Compare(key, startAfter) <= 0) continue;
      if (delimiter !== '') {
        const i = key.indexOf(delimiter, prefix.length);
        if (i !== -1) {
          prefixes.add(key.slice(0, i + delimiter.length));
          continue;
        }
      }
      if (objects.length >= maxKeys) {
        isTruncated = true;
        break;
      }
      objects.push(key);
    }
    const withMeta = await Promise.all(objects.map(async (key) => [key, await store.getMetadata(bucket, key).catch(() => undefined)] as const));
    return {
      objects: withMeta.filter(([, m]) => m !== undefined).map(([key, m]) => new S3ObjectModel(bucket, key, null, m as Record<string, string>)),
      commonPrefixes: [...prefixes].sort(utf8Compare),
      isTruncated,
    };
  };
}

/** Every key under `prefix`, in S3 (UTF-8 byte) order. */
async function sortedKeys(store: FilesystemStore, bucket: string, prefix: string): Promise<string[]> {
  const root = store.getBucketPath(bucket);
  const keys: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(join(root, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const name = e.name;
      if (rel === '' && name === UPLOADS_DIR) continue;
      if (name.endsWith(OBJECT_SUFFIX)) {
        const key = rel + name.slice(0, -OBJECT_SUFFIX.length);
        if (key.startsWith(prefix)) keys.push(key);
        continue;
      }
      const sub = `${rel}${name}/`;
      if (e.isDirectory() && (sub.startsWith(prefix) || prefix.startsWith(sub))) await walk(sub);
    }
  };
  await walk('');
  return keys.sort(utf8Compare);
}

/** ListObjectsV2 with S3's paging (see 5. above). */
async function listObjectsV2(store: FilesystemStore, ctx: KoaContext, bucket: string): Promise<void> {
  const q = ctx.query;
  const prefix = q.prefix ?? '';
  const delimiter = q.delimiter ?? '';
  const maxKeys = Math.min(1000, q['max-keys'] !== undefined ? Number(q['max-keys']) : 1000);
  let after = q['start-after'] ?? '';
  let afterPrefix: string | undefined;
  if (q['continuation-token'] !== undefined) {
    const t = JSON.parse(Buffer.from(q['continuation-token'], 'base64url').toString('utf8')) as { k: string; p: boolean };
    after = t.k;
    if (t.p) afterPrefix = t.k;
  }
  const items: { key: string; prefix: boolean }[] = [];
  let truncated = false;
  let lastPrefix: string | undefined;
  for (const key of await sortedKeys(store, bucket, prefix)) {
    if (utf8Compare(key, after) <= 0 || (afterPrefix !== undefined && key.startsWith(afterPrefix))) continue;
    let item = { key, prefix: false };
    if (delimiter !== '') {
      const i = key.indexOf(delimiter, prefix.length);
      if (i !== -1) {
        const cp = key.slice(0, i + delimiter.length);
        if (cp === lastPrefix) continue;
        lastPrefix = cp;
        item = { key: cp, prefix: true };
      }
    }
    if (items.length >= maxKeys) {
      truncated = true;
      break;
    }
    items.push(item);
  }
  const contents: string[] = [];
  for (const it of items) {
    if (it.prefix) continue;
    const m = await store.getMetadata(bucket, it.key).catch(() => undefined);
    if (m === undefined) continue;
    contents.push(`<Contents><Key>${xml(it.key)}</Key><LastModified>${new Date(m['last-modified'] as string).toISOString()}</LastModified><ETag>${xml(m.etag as string)}</ETag><Size>${m['content-length']}</Size><StorageClass>STANDARD</StorageClass></Contents>`);
  }
  const prefixes = items.filter((it) => it.prefix).map((it) => `<CommonPrefixes><Prefix>${xml(it.key)}</Prefix></CommonPrefixes>`);
  const last = items.at(-1);
  const token = truncated && last !== undefined ? Buffer.from(JSON.stringify({ k: last.key, p: last.prefix })).toString('base64url') : undefined;
  ctx.type = 'application/xml';
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${xml(bucket)}</Name><Prefix>${xml(prefix)}</Prefix>`
    + (q['start-after'] !== undefined ? `<StartAfter>${xml(q['start-after'])}</StartAfter>` : '')
    + (q['continuation-token'] !== undefined ? `<ContinuationToken>${xml(q['continuation-token'])}</ContinuationToken>` : '')
    + (token !== undefined ? `<NextContinuationToken>${token}</NextContinuationToken>` : '')
    + `<KeyCount>${items.length}</KeyCount><MaxKeys>${maxKeys}</MaxKeys>${delimiter !== '' ? `<Delimiter>${xml(delimiter)}</Delimiter>` : ''}<IsTruncated>${truncated}</IsTruncated>`
    + contents.join('') + prefixes.join('') + '</ListBucketResult>';
}

/** ListMultipartUploads and AbortMultipartUpload over s3rver's upload directories. */
function uploadsMiddleware(dir: string, store: FilesystemStore) {
  return async (ctx: KoaContext, next: () => Promise<void>): Promise<void> => {
    await extensions(dir, store, ctx, next);
  };
}

async function extensions(dir: string, store: FilesystemStore, ctx: KoaContext, next: () => Promise<void>): Promise<void> {
  {
    const bucketOnly = /^\/([^/]+)\/?$/.exec(ctx.path);
    if (ctx.method === 'GET' && bucketOnly !== null && ctx.query['list-type'] === '2' && ctx.query.uploads === undefined) {
      const bucket = decodeURIComponent(bucketOnly[1] as string);
      if ((await stat(join(dir, bucket)).catch(() => undefined)) !== undefined) {
        await listObjectsV2(store, ctx, bucket);
        return;
      }
    }
    if (ctx.method === 'GET' && bucketOnly !== null && ctx.query.uploads !== undefined) {
      const bucket = decodeURIComponent(bucketOnly[1] as string);
      const prefix = ctx.query.prefix ?? '';
      const base = join(dir, bucket, UPLOADS_DIR);
      const uploads: string[] = [];
      for (const id of (await readdir(base).catch(() => [] as string[])).sort()) {
        const key = await readFile(join(base, id, 'key'), 'utf8').catch(() => undefined);
        if (key === undefined || !key.startsWith(prefix)) continue;
        const st = await stat(join(base, id));
        uploads.push(`<Upload><Key>${xml(key)}</Key><UploadId>${xml(id)}</UploadId><Initiated>${st.birthtime.getTime() > 0 ? st.birthtime.toISOString() : st.ctime.toISOString()}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`);
      }
      ctx.type = 'application/xml';
      ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${xml(bucket)}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><Prefix>${xml(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${uploads.join('')}</ListMultipartUploadsResult>`;
      return;
    }
    const objectPath = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
    const uploadId = ctx.query.uploadId;
    if (ctx.method === 'DELETE' && objectPath !== null && uploadId !== undefined) {
      const upload = join(dir, decodeURIComponent(objectPath[1] as string), UPLOADS_DIR, uploadId);
      if (!/^[0-9a-f]+$/i.test(uploadId) || (await stat(upload).catch(() => undefined)) === undefined) {
        ctx.status = 404;
        ctx.type = 'application/xml';
        ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message><UploadId>${xml(uploadId)}</UploadId></Error>`;
        return;
      }
      await rm(upload, { recursive: true, force: true });
      ctx.status = 204;
      ctx.body = null;
      return;
    }
    await next();
  }
}

/** Counts requests in progress, so stop() can let them finish before the files go away. */
function inFlightCounter(): { middleware: (ctx: KoaContext, next: () => Promise<void>) => Promise<void>; idle(): Promise<void> } {
  let n = 0;
  const waiters: (() => void)[] = [];
  return {
    async middleware(_ctx, next) {
      n++;
      try {
        await next();
      } finally {
        n--;
        if (n === 0) for (const w of waiters.splice(0)) w();
      }
    },
    idle: () => (n === 0 ? Promise.resolve() : new Promise<void>((r) => waiters.push(r))),
  };
}

export async function startS3rver(options: { bucket?: string; port?: number } = {}): Promise<S3rverHandle> {
  const bucket = options.bucket ?? 'portico-test';
  const dir = mkdtempSync(join(tmpdir(), 'portico-s3rver-'));
  const server = new S3rver({ port: options.port ?? 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: [{ name: bucket }] });
  patchStore(server.store);
  server.middleware.unshift(uploadsMiddleware(dir, server.store));
  const inFlight = inFlightCounter();
  server.middleware.unshift(inFlight.middleware);
  const addr = await server.run();
  const endpoint = `http://127.0.0.1:${addr.port}`;
  const clients: S3Client[] = [];
  let stopped = false;
  return {
    endpoint,
    port: addr.port,
    bucket,
    dir,
    client(ep = endpoint) {
      const c = new S3Client({
        endpoint: ep, region: 'us-east-1', forcePathStyle: true, credentials: S3RVER_CREDENTIALS,
        requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
      });
      clients.push(c);
      return c;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const c of clients) c.destroy();
      // Requests whose clients went away still run in s3rver: let them end before it closes.
      await Promise.race([inFlight.idle(), new Promise((r) => setTimeout(r, 5000))]);
      const closing = server.close().catch(() => undefined);
      // Keep-alive sockets of clients nobody closed would hold close() open forever.
      server.httpServer?.closeAllConnections();
      await closing;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Files s3rver holds for a bucket (for assertions about what reached the store). */
export function storedFiles(h: S3rverHandle): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(join(d, e.name));
    }
  };
  walk(join(h.dir, h.bucket));
  return out;
}
