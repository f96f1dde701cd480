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
 *    descriptor keeps reading the version it opened, as on S3). Listings read each key's metadata
 *    under the same lock: s3rver rewrites metadata.json in place, and a listing that read it
 *    mid-rewrite could not parse it and left the (existing) key out.
 * 3. ListMultipartUploads (GET /bucket?uploads) and 4. AbortMultipartUpload (DELETE
 *    /bucket/key?uploadId=): answered NotImplemented / MethodNotAllowed; implemented over s3rver's
 *    own upload directories.
 * 6. CopyObject with MetadataDirective REPLACE kept the destination's old MD5, so the copy reported
 *    the ETag of the content it replaced. The copy now carries the source's MD5 (and is atomic).
 * 5. ListObjectsV2 continuation tokens: s3rver encrypts them with DES, which OpenSSL 3 (every
 *    Node since 17) refuses, so any truncated V2 listing was a 500. V2 listings are answered here
 *    with S3's paging rules (MaxKeys counts keys and common prefixes; the opaque token resumes
 *    after the last key or prefix returned).
 * 7. UploadPartCopy (PUT /bucket/key?partNumber=N&uploadId=U with x-amz-copy-source): answered
 *    NotImplemented. Implemented as AWS documents it: optional `x-amz-copy-source-range:
 *    bytes=first-last` (inclusive; must lie inside the source, else 400 InvalidArgument; without it
 *    the whole source), at most 5 GiB per part (400 InvalidRequest), the conditional headers
 *    x-amz-copy-source-if-match / -if-none-match / -if-unmodified-since / -if-modified-since with
 *    S3's combination rules (a failed condition is 412 PreconditionFailed, nothing copied), 404
 *    NoSuchKey / NoSuchUpload, and a `CopyPartResult` XML with the part's ETag (MD5 of the copied
 *    bytes) and LastModified. The source's metadata check and file open happen under the source key's
 *    lock, and the bytes are streamed from that descriptor, so a part never mixes two versions of
 *    the source (an overwrite renames a new file into place). CopyObject's own x-amz-copy-source-if-*
 *    headers, ignored by s3rver, are checked the same way just before s3rver copies.
 *    UploadPart itself answered before the part file was completely written (s3rver awaited its
 *    hashing stream, not the file), so a quick CompleteMultipartUpload could assemble a cut part:
 *    parts are now written to a temporary file, renamed into place, then acknowledged.
 * 8. CompleteMultipartUpload: s3rver assembled whatever part files existed, ignoring the request's
 *    part list rules. Now checked like S3: parts in ascending order (400 InvalidPartOrder), each
 *    listed part uploaded with the listed ETag (400 InvalidPart), every part but the last at least
 *    5 MiB (400 EntityTooSmall), only the listed parts assembled. So tests catch clients that break
 *    the rules AWS enforces. The object's ETag is S3's multipart form (MD5 of the parts' binary
 *    MD5s, "-N"), not the MD5 of the content; and as on S3 a CopyObject (or in-place metadata
 *    rewrite) of such an object is a new single-part object whose ETag is the content's MD5 — the
 *    same bytes under another ETag, which clients that pin versions by ETag must cope with.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, readdirSync, rmSync, type Dirent } from 'node:fs';
import { copyFile, mkdir, open, readFile, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
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
  headers: Record<string, string | string[] | undefined>;
  req: Readable;
  status: number;
  body: unknown;
  type: string;
  set(name: string, value: string): void;
}

type KeyLock = <T>(key: string, fn: () => Promise<T>) => Promise<T>;

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

function patchStore(store: FilesystemStore): KeyLock {
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
        const srcMd5 = await readFile(`${src}.md5`, 'utf8').catch(() => undefined);
        // A copy is a new single-part object: a multipart source's "-N" ETag becomes the MD5 (as on S3).
        await writeFile(`${dst}.md5`, srcMd5 === undefined || srcMd5.includes('-') ? await md5File(tmp) : srcMd5);
        if (replacement === null) await copyFile(store.getResourcePath(srcBucket, srcKey, 'metadata.json'), store.getResourcePath(destBucket, destKey, 'metadata.json')).catch(() => undefined);
        await rename(tmp, dst);
      }
      if (replacement !== null) {
        // Rewritten in place (metadata change): also a new single-part object.
        const md5 = src === dst && (await readFile(`${dst}.md5`, 'utf8').catch(() => '')).includes('-') ? await md5File(dst) : undefined;
        await store.putMetadata(destBucket, destKey, replacement, md5);
      }
      return store.getMetadata(destBucket, destKey);
    });
  store.deleteObject = (bucket, key) => lock(`${bucket}/${key}`, () => origDelete(bucket, key));

  store.putObject = async function putObject(object: S3Object) {
    const objectPath = store.getResourcePath(object.bucket, object.key, 'object');
    await mkdir(dirname(objectPath), { recursive: true });
    // Not ending in the object suffix: listings ignore it while it is being written.
    const tmp = `${objectPath}.incoming-${randomBytes(6).toString('hex')}`;
    const spooled = await spool(Buffer.isBuffer(object.content) ? [object.content] : (object.content as AsyncIterable<Buffer>), tmp);
    const size = spooled.size;
    // A multipart completion passes S3's "-N" ETag (see 8.).
    const digest = (object as S3Object & { etag?: string }).etag ?? spooled.md5;
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
    // Under the key's lock (see 2.): a read racing a PUT's in-place rewrite of metadata.json could
    // not parse it, and the existing key was silently left out of the listing.
    const withMeta = await Promise.all(objects.map(async (key) => [key, await lock(`${bucket}/${key}`, () => store.getMetadata(bucket, key)).catch(() => undefined)] as const));
    return {
      objects: withMeta.filter(([, m]) => m !== undefined).map(([key, m]) => new S3ObjectModel(bucket, key, null, m as Record<string, string>)),
      commonPrefixes: [...prefixes].sort(utf8Compare),
      isTruncated,
    };
  };
  return lock;
}

async function md5File(file: string): Promise<string> {
  const h = createHash('md5');
  for await (const c of createReadStream(file) as AsyncIterable<Buffer>) h.update(c);
  return h.digest('hex');
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
async function listObjectsV2(store: FilesystemStore, lock: KeyLock, ctx: KoaContext, bucket: string): Promise<void> {
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
    // Under the key's lock (see 2.), like a GET: a listing that raced an overwrite of the key read
    // a truncated metadata.json, failed to parse it and dropped the key (S3 lists an existing key
    // during an overwrite, under its old or its new version; absent only once deleted).
    const m = await lock(`${bucket}/${it.key}`, () => store.getMetadata(bucket, it.key)).catch(() => undefined);
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

function s3Error(ctx: KoaContext, status: number, code: string, message: string, extra = ''): void {
  ctx.status = status;
  ctx.type = 'application/xml';
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xml(message)}</Message>${extra}<RequestId>0</RequestId></Error>`;
}

function header(ctx: KoaContext, name: string): string | undefined {
  const v = ctx.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

const MiB = 1024 * 1024;
const MAX_COPY_PART = 5 * 1024 * MiB;
const MIN_PART = 5 * MiB;

/**
 * S3's rules for x-amz-copy-source-if-* (CopyObject / UploadPartCopy): if-match true makes a false
 * if-unmodified-since irrelevant; if-none-match false fails even when if-modified-since holds.
 * Returns the failed header, or undefined when the copy may proceed.
 */
function failedCopyCondition(ctx: KoaContext, etag: string, lastModified: Date): string | undefined {
  const bare = (e: string): string => e.trim().replace(/^W\//, '').replace(/"/g, '');
  const tags = (v: string): string[] => v.split(',').map(bare);
  const ifMatch = header(ctx, 'x-amz-copy-source-if-match');
  const ifNoneMatch = header(ctx, 'x-amz-copy-source-if-none-match');
  const ifUnmod = header(ctx, 'x-amz-copy-source-if-unmodified-since');
  const ifMod = header(ctx, 'x-amz-copy-source-if-modified-since');
  const t = Math.floor(lastModified.getTime() / 1000) * 1000;
  const matched = ifMatch === undefined ? undefined : tags(ifMatch).some((x) => x === '*' || x === bare(etag));
  if (matched === false) return 'x-amz-copy-source-If-Match';
  if (matched === undefined && ifUnmod !== undefined && !Number.isNaN(Date.parse(ifUnmod)) && t > Date.parse(ifUnmod)) return 'x-amz-copy-source-If-Unmodified-Since';
  const noneMatched = ifNoneMatch === undefined ? undefined : !tags(ifNoneMatch).some((x) => x === '*' || x === bare(etag));
  if (noneMatched === false) return 'x-amz-copy-source-If-None-Match';
  if (noneMatched === undefined && ifMod !== undefined && !Number.isNaN(Date.parse(ifMod)) && t <= Date.parse(ifMod)) return 'x-amz-copy-source-If-Modified-Since';
  return undefined;
}

/** The x-amz-copy-source header as bucket and key. */
function copySource(ctx: KoaContext): { srcBucket: string; srcKey: string } | undefined {
  const source = (header(ctx, 'x-amz-copy-source') ?? '').replace(/^\//, '').replace(/\?versionId=.*$/, '');
  const slash = source.indexOf('/');
  if (slash <= 0 || slash === source.length - 1) return undefined;
  return { srcBucket: decodeURIComponent(source.slice(0, slash)), srcKey: decodeURIComponent(source.slice(slash + 1)) };
}

/** UploadPartCopy (see 7. above). */
async function uploadPartCopy(dir: string, store: FilesystemStore, lock: KeyLock, ctx: KoaContext, bucket: string, key: string): Promise<void> {
  const uploadId = ctx.query.uploadId as string;
  const partNumber = Number(ctx.query.partNumber);
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10_000) {
    s3Error(ctx, 400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive');
    return;
  }
  const upload = join(dir, bucket, UPLOADS_DIR, uploadId);
  if (!/^[0-9a-f]+$/i.test(uploadId) || (await stat(upload).catch(() => undefined)) === undefined) {
    s3Error(ctx, 404, 'NoSuchUpload', 'The specified upload does not exist.', `<UploadId>${xml(uploadId)}</UploadId>`);
    return;
  }
  const src = copySource(ctx);
  if (src === undefined) {
    s3Error(ctx, 400, 'InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey');
    return;
  }
  const { srcBucket, srcKey } = src;
  const rangeHeader = header(ctx, 'x-amz-copy-source-range');
  // Under the source key's lock: metadata and the descriptor we stream from are one version.
  const opened = await lock(`${srcBucket}/${srcKey}`, async () => {
    const meta = await store.getMetadata(srcBucket, srcKey).catch(() => undefined);
    if (meta === undefined) return undefined;
    const fh = await open(store.getResourcePath(srcBucket, srcKey, 'object'), 'r');
    return { meta, fh };
  });
  if (opened === undefined) {
    s3Error(ctx, 404, 'NoSuchKey', 'The specified key does not exist.', `<Key>${xml(srcKey)}</Key>`);
    return;
  }
  const { meta, fh } = opened;
  try {
    const size = Number(meta['content-length']);
    const etag = meta.etag as string;
    const failed = failedCopyCondition(ctx, etag, new Date(meta['last-modified'] as string));
    if (failed !== undefined) {
      s3Error(ctx, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', `<Condition>${failed}</Condition>`);
      return;
    }
    let first = 0;
    let last = size - 1;
    if (rangeHeader !== undefined) {
      const m = /^bytes=(\d+)-(\d+)$/.exec(rangeHeader.trim());
      if (m === null || Number(m[1]) > Number(m[2])) {
        s3Error(ctx, 400, 'InvalidArgument', 'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy');
        return;
      }
      first = Number(m[1]);
      last = Number(m[2]);
      if (last >= size) {
        s3Error(ctx, 400, 'InvalidArgument', `Range specified is not valid for source object of size: ${size}`);
        return;
      }
    }
    if (last - first + 1 > MAX_COPY_PART) {
      s3Error(ctx, 400, 'InvalidRequest', 'The specified copy source is larger than the maximum allowable size for a copy source: 5368709120');
      return;
    }
    const body = last < first ? Readable.from([]) : fh.createReadStream({ start: first, end: last, autoClose: false });
    const md5 = await storePart(upload, partNumber, body);
    ctx.type = 'application/xml';
    ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<CopyPartResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LastModified>${new Date().toISOString()}</LastModified><ETag>"${md5}"</ETag></CopyPartResult>`;
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * Streams a body into `tmp` (removed again on failure), hashing it on the way. Through pipeline():
 * a write stream that fails while the body is being awaited (the test's temp dir removed under a
 * late request, say) must reject this call, not emit an 'error' nobody listens to (that crashed the
 * test process with ERR_STREAM_DESTROYED once).
 */
async function spool(body: Iterable<Buffer> | AsyncIterable<Buffer>, tmp: string): Promise<{ md5: string; size: number }> {
  const md5 = createHash('md5');
  let size = 0;
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const chunk of body) {
      md5.update(chunk);
      size += chunk.length;
      yield chunk;
    }
  }
  try {
    await pipeline(hashed(), createWriteStream(tmp));
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  return { md5: md5.digest('hex'), size };
}

/**
 * Writes a part file the way s3rver lays it out (`<upload>/<n>` and `<n>.md5`), but acknowledged
 * only once it is completely on disk (s3rver's putPart resolved when its hashing stream finished,
 * possibly before the file write did): a temporary file, flushed, then renamed into place.
 */
async function storePart(upload: string, partNumber: number, body: Readable): Promise<string> {
  const file = join(upload, String(partNumber));
  const tmp = `${file}.incoming-${randomBytes(6).toString('hex')}`;
  const digest = (await spool(body as AsyncIterable<Buffer>, tmp)).md5;
  await rename(tmp, file);
  await writeFile(`${file}.md5`, digest);
  return digest;
}

/** UploadPart, acknowledged only once the part is on disk (see storePart). */
async function uploadPart(dir: string, ctx: KoaContext, bucket: string): Promise<void> {
  const uploadId = ctx.query.uploadId as string;
  const partNumber = Number(ctx.query.partNumber);
  const upload = join(dir, bucket, UPLOADS_DIR, uploadId);
  if (!/^[0-9a-f]+$/i.test(uploadId) || (await stat(upload).catch(() => undefined)) === undefined) {
    s3Error(ctx, 404, 'NoSuchUpload', 'The specified upload does not exist.', `<UploadId>${xml(uploadId)}</UploadId>`);
    return;
  }
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10_000) {
    s3Error(ctx, 400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive');
    return;
  }
  const md5 = await storePart(upload, partNumber, ctx.req);
  ctx.set('ETag', `"${md5}"`);
  ctx.status = 200;
  ctx.body = '';
}

/** CompleteMultipartUpload with S3's part checks (see 8. above). */
async function completeUpload(dir: string, store: FilesystemStore, ctx: KoaContext, bucket: string): Promise<void> {
  const uploadId = ctx.query.uploadId as string;
  const upload = join(dir, bucket, UPLOADS_DIR, uploadId);
  if (!/^[0-9a-f]+$/i.test(uploadId) || (await stat(upload).catch(() => undefined)) === undefined) {
    s3Error(ctx, 404, 'NoSuchUpload', 'The specified upload does not exist.', `<UploadId>${xml(uploadId)}</UploadId>`);
    return;
  }
  const chunks: Buffer[] = [];
  for await (const c of ctx.req as AsyncIterable<Buffer>) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8');
  const parts: { number: number; etag: string }[] = [];
  for (const m of text.matchAll(/<Part>([\s\S]*?)<\/Part>/g)) {
    const n = /<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(m[1] as string);
    const e = /<ETag>([\s\S]*?)<\/ETag>/.exec(m[1] as string);
    if (n === null || e === null) break;
    parts.push({ number: Number(n[1]), etag: (e[1] as string).replace(/&quot;|&#34;|"/g, '').trim() });
  }
  if (parts.length === 0) {
    s3Error(ctx, 400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
    return;
  }
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (i > 0 && p.number <= parts[i - 1]!.number) {
      s3Error(ctx, 400, 'InvalidPartOrder', 'The list of parts was not in ascending order. The parts list must be specified in order by part number.');
      return;
    }
    const file = join(upload, String(p.number));
    const [st, md5] = await Promise.all([stat(file).catch(() => undefined), readFile(`${file}.md5`, 'utf8').catch(() => undefined)]);
    if (st === undefined || md5 === undefined || md5.trim() !== p.etag) {
      s3Error(ctx, 400, 'InvalidPart', "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.", `<PartNumber>${p.number}</PartNumber><ETag>${xml(p.etag)}</ETag>`);
      return;
    }
    if (i < parts.length - 1 && st.size < MIN_PART) {
      s3Error(ctx, 400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.', `<ProposedSize>${st.size}</ProposedSize><MinSizeAllowed>${MIN_PART}</MinSizeAllowed><PartNumber>${p.number}</PartNumber><ETag>${xml(p.etag)}</ETag>`);
      return;
    }
  }
  const key = await readFile(join(upload, 'key'), 'utf8');
  const metadata = JSON.parse(await readFile(join(upload, 'metadata'), 'utf8')) as Record<string, string>;
  // S3's multipart ETag: MD5 of the concatenated binary part MD5s, then "-<part count>".
  const etag = `${createHash('md5').update(Buffer.concat(parts.map((p) => Buffer.from(p.etag, 'hex')))).digest('hex')}-${parts.length}`;
  async function* body(): AsyncGenerator<Buffer> {
    for (const p of parts) yield* createReadStream(join(upload, String(p.number))) as AsyncIterable<Buffer>;
  }
  await store.putObject({ bucket, key, content: Readable.from(body()), metadata, etag } as S3Object);
  await rm(upload, { recursive: true, force: true });
  ctx.type = 'application/xml';
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>${xml(ctx.path)}</Location><Bucket>${xml(bucket)}</Bucket><Key>${xml(key)}</Key><ETag>"${etag}"</ETag></CompleteMultipartUploadResult>`;
}

/** ListMultipartUploads, AbortMultipartUpload, UploadPartCopy, CompleteMultipartUpload (see above). */
function uploadsMiddleware(dir: string, store: FilesystemStore, lock: KeyLock) {
  return async (ctx: KoaContext, next: () => Promise<void>): Promise<void> => {
    await extensions(dir, store, lock, ctx, next);
  };
}

async function extensions(dir: string, store: FilesystemStore, lock: KeyLock, ctx: KoaContext, next: () => Promise<void>): Promise<void> {
  {
    const bucketOnly = /^\/([^/]+)\/?$/.exec(ctx.path);
    if (ctx.method === 'GET' && bucketOnly !== null && ctx.query['list-type'] === '2' && ctx.query.uploads === undefined) {
      const bucket = decodeURIComponent(bucketOnly[1] as string);
      if ((await stat(join(dir, bucket)).catch(() => undefined)) !== undefined) {
        await listObjectsV2(store, lock, ctx, bucket);
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
    if (ctx.method === 'PUT' && objectPath !== null && uploadId !== undefined && ctx.query.partNumber !== undefined && header(ctx, 'x-amz-copy-source') !== undefined) {
      await uploadPartCopy(dir, store, lock, ctx, decodeURIComponent(objectPath[1] as string), decodeURIComponent(objectPath[2] as string));
      return;
    }
    if (ctx.method === 'PUT' && objectPath !== null && uploadId === undefined && Object.keys(ctx.query).length === 0
      && header(ctx, 'x-amz-copy-source') !== undefined && Object.keys(ctx.headers).some((h) => h.startsWith('x-amz-copy-source-if-'))) {
      // CopyObject's conditions (see 7.), checked just before s3rver copies (not atomic with it).
      const src = copySource(ctx);
      const meta = src === undefined ? undefined : await store.getMetadata(src.srcBucket, src.srcKey).catch(() => undefined);
      const failed = meta === undefined ? undefined : failedCopyCondition(ctx, meta.etag as string, new Date(meta['last-modified'] as string));
      if (failed !== undefined) {
        s3Error(ctx, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', `<Condition>${failed}</Condition>`);
        return;
      }
    }
    if (ctx.method === 'PUT' && objectPath !== null && uploadId !== undefined && ctx.query.partNumber !== undefined) {
      await uploadPart(dir, ctx, decodeURIComponent(objectPath[1] as string));
      return;
    }
    if (ctx.method === 'POST' && objectPath !== null && uploadId !== undefined) {
      await completeUpload(dir, store, ctx, decodeURIComponent(objectPath[1] as string));
      return;
    }
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
  const lock = patchStore(server.store);
  server.middleware.unshift(uploadsMiddleware(dir, server.store, lock));
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
