/**
 * Options of the S3 backend, and how `s3://bucket/prefix` plus a share's `options` become them.
 *
 * Endpoint: options.endpoint, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL (the SDK's own
 * variables), else AWS. Path-style addressing is the default whenever a custom endpoint is set
 * (MinIO, Ceph, s3rver and most S3-compatible stores want it). Credentials: accessKeyId +
 * secretAccessKey when both are given, else the SDK's standard chain (environment, shared files,
 * SSO, web identity, container and instance roles), untouched: no region, profile or provider is
 * forced on it. Sizes accept numbers of bytes or strings such as "4MiB".
 *
 * TLS: `tls.ca` (a PEM file of CA certificates; the gateway passes the config's `s3.tls.ca` for
 * shares that set none), else AWS_CA_BUNDLE (what the AWS CLI and the other SDKs honour; the JS
 * SDK does not, so we do): trusted for an https endpoint instead of the default roots.
 */
import type { Logger } from '../../src/log/logger.ts';
import type { Metrics } from '../../src/metrics/metrics.ts';
import { STORE_FEATURES, type StoreFeature } from './features.ts';
import { VfsError } from '../../src/vfs/errors.ts';

/** Default of `orphanUploadAgeMs`: multipart uploads older than a day are a crashed writer's (shard packs use it too). */
export const ORPHAN_UPLOAD_AGE_MS = 24 * 3600 * 1000;

export interface S3BackendOptions {
  bucket: string;
  /** Key prefix of the share inside the bucket ('' = whole bucket). */
  prefix?: string;
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** PEM file of CA certificates trusted for an https endpoint (instead of Node's default roots). */
  tlsCa?: string;
  /** Which setting named tlsCa (for messages), e.g. "AWS_CA_BUNDLE". */
  tlsCaSource?: string;
  /** Optional S3 APIs known missing in the store: never tried (features.ts). */
  disableFeatures?: StoreFeature[];

  /** Read block (ranged GET) size, default 4 MiB. */
  blockSize?: number;
  /** Fetch unit of small random reads, default 128 KiB (>= blockSize: whole blocks). */
  randomReadSize?: number;
  /** Memory block cache, default 32 MiB (the disk tier is the large cache). */
  memoryCacheBytes?: number;
  /** Disk block cache directory (no disk tier when unset). */
  cacheDir?: string;
  /** Disk block cache bound, default 10 GiB. */
  diskCacheBytes?: number;
  /** Largest read-ahead window, default 32 MiB. */
  readAheadMaxBytes?: number;
  /** Largest GET read-ahead issues for adjacent blocks, default 128 MiB (GETs are costly; its body is read only as the read-ahead budget allows). */
  readAheadRunBytes?: number;
  /** Concurrent block fetches, default 16. */
  maxConcurrentFetches?: number;

  /** Multipart part size (at least 5 MiB), default 8 MiB. */
  partSize?: number;
  /** Parts uploaded at once per writer, default 4. */
  maxConcurrentParts?: number;
  /** Parts larger than this are spooled to disk instead of memory, default 64 MiB. */
  memoryPartLimit?: number;
  /** Where spooled parts go, default <tmpdir>/portico-s3-spool. */
  spoolDir?: string;
  /**
   * Largest server-side copy in one request, default (and at most) 5 GiB, at least 5 MiB: copy() and
   * metadata rewrites use CopyObject up to this size and a multipart copy (UploadPartCopy parts of
   * at most this size) above it; patched uploads of the write stage copy at most this much per part.
   */
  multipartCopyThreshold?: number;

  /** Metadata cache TTL in ms (default 5000; 0 = always ask S3). */
  metaTtlMs?: number;
  /** 'listing' (default): listings use cached metadata or listing data; 'head': HEAD unknown files. */
  listMetadata?: 'listing' | 'head';
  /**
   * HEAD every object written by a single PutObject (default false: its LastModified is taken from
   * the answer's Date until the store's own value is seen). For stores that acknowledge a PUT before
   * the object is complete (stock s3rver): the HEAD then checks the size (README, "Writes").
   */
  headAfterPut?: boolean;

  requestTimeoutMs?: number;
  maxAttempts?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  minThroughputBytesPerSec?: number;
  circuitFailureThreshold?: number;
  circuitCooldownMs?: number;
  maxSockets?: number;

  /** Directory for the multipart-upload journal (recover() aborts what a crash left). */
  stateDir?: string;
  /** recover() also aborts uploads under the prefix older than this (default 24 h). */
  orphanUploadAgeMs?: number;

  defaultUid?: number;
  defaultGid?: number;
  defaultFileMode?: number;
  defaultDirMode?: number;

  metrics?: Metrics;
  /** Where a missing optional feature is reported (one warning per feature). */
  logger?: Logger;
  /** `backend` label of the metrics (default the source, s3://bucket/prefix). */
  metricsLabel?: string;
}

const UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4,
};

function bad(name: string, value: unknown, what: string): VfsError {
  return new VfsError('EINVAL', `s3 backend option ${name}: ${JSON.stringify(value)} is not ${what}`);
}

export function parseSize(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v);
    const unit = m === null ? undefined : UNITS[(m[2] as string).toLowerCase()];
    if (m !== null && unit !== undefined) return Math.round(Number(m[1]) * unit);
  }
  throw bad(name, v, 'a size (bytes, or e.g. "4MiB")');
}

function num(name: string, v: unknown, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min) throw bad(name, v, `a number >= ${min}`);
  return n;
}

function str(name: string, v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length === 0) throw bad(name, v, 'a non-empty string');
  return v;
}

function bool(name: string, v: unknown): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  throw bad(name, v, 'true or false');
}

function mode(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^0?[0-7]{1,4}$/.test(v) ? parseInt(v, 8) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0o7777) throw bad(name, v, 'a permission mode such as "0644"');
  return n;
}

/** `s3://bucket/prefix` + share options + environment -> S3BackendOptions. */
export function parseS3Source(source: string, options: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = process.env): S3BackendOptions {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/i.exec(source);
  if (m === null) throw new VfsError('EINVAL', `bad S3 source '${source}' (expected s3://bucket or s3://bucket/prefix)`);
  const bucket = m[1] as string;
  if (!/^[a-z0-9][a-z0-9.\-_]{0,254}$/i.test(bucket)) throw new VfsError('EINVAL', `bad S3 bucket name '${bucket}'`);
  const o = options;
  const endpoint = str('endpoint', o.endpoint) ?? (env.AWS_ENDPOINT_URL_S3 || undefined) ?? (env.AWS_ENDPOINT_URL || undefined);
  if (endpoint !== undefined && !/^https?:\/\/[^/]+/i.test(endpoint)) throw bad('endpoint', endpoint, 'an http(s):// URL');
  const out: S3BackendOptions = {
    bucket,
    prefix: m[2] ?? '',
    region: str('region', o.region) ?? (env.AWS_REGION || undefined) ?? (env.AWS_DEFAULT_REGION || undefined) ?? 'us-east-1',
    forcePathStyle: bool('forcePathStyle', o.forcePathStyle) ?? endpoint !== undefined,
    metricsLabel: str('metricsLabel', o.metricsLabel) ?? source,
  };
  if (endpoint !== undefined) out.endpoint = endpoint;
  const accessKeyId = str('accessKeyId', o.accessKeyId);
  const secretAccessKey = str('secretAccessKey', o.secretAccessKey);
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new VfsError('EINVAL', 's3 backend options accessKeyId and secretAccessKey go together');
  }
  if (accessKeyId !== undefined && secretAccessKey !== undefined) {
    out.accessKeyId = accessKeyId;
    out.secretAccessKey = secretAccessKey;
    const token = str('sessionToken', o.sessionToken);
    if (token !== undefined) out.sessionToken = token;
  }
  const tls = o.tls;
  if (tls !== undefined && tls !== null && (typeof tls !== 'object' || Array.isArray(tls))) throw bad('tls', tls, 'an object such as { ca: /path/to/ca.pem }');
  const ca = str('tls.ca', (tls as { ca?: unknown } | null | undefined)?.ca ?? undefined);
  if (ca !== undefined) {
    out.tlsCa = ca;
    out.tlsCaSource = str('tlsCaSource', o.tlsCaSource) ?? 'shares[].options.tls.ca';
  } else if (env.AWS_CA_BUNDLE) {
    out.tlsCa = env.AWS_CA_BUNDLE;
    out.tlsCaSource = 'AWS_CA_BUNDLE';
  }
  if (o.disableFeatures !== undefined) {
    const list = o.disableFeatures;
    if (!Array.isArray(list) || list.some((f) => !(STORE_FEATURES as readonly unknown[]).includes(f))) {
      throw bad('disableFeatures', list, `a list of ${STORE_FEATURES.join(', ')}`);
    }
    out.disableFeatures = list as StoreFeature[];
  }
  const sizes = ['blockSize', 'randomReadSize', 'memoryCacheBytes', 'diskCacheBytes', 'readAheadMaxBytes', 'readAheadRunBytes', 'partSize', 'memoryPartLimit', 'minThroughputBytesPerSec', 'multipartCopyThreshold'] as const;
  for (const k of sizes) {
    const v = parseSize(k, o[k]);
    if (v !== undefined) out[k] = v;
  }
  const nums = ['maxConcurrentFetches', 'maxConcurrentParts', 'metaTtlMs', 'requestTimeoutMs', 'maxAttempts', 'retryBaseMs', 'retryMaxMs',
    'circuitFailureThreshold', 'circuitCooldownMs', 'maxSockets', 'orphanUploadAgeMs', 'defaultUid', 'defaultGid'] as const;
  for (const k of nums) {
    const v = num(k, o[k]);
    if (v !== undefined) out[k] = v;
  }
  for (const k of ['cacheDir', 'spoolDir', 'stateDir'] as const) {
    const v = str(k, o[k]);
    if (v !== undefined) out[k] = v;
  }
  const fm = mode('defaultFileMode', o.defaultFileMode);
  if (fm !== undefined) out.defaultFileMode = fm;
  const dm = mode('defaultDirMode', o.defaultDirMode);
  if (dm !== undefined) out.defaultDirMode = dm;
  const hap = bool('headAfterPut', o.headAfterPut);
  if (hap !== undefined) out.headAfterPut = hap;
  if (o.listMetadata !== undefined) {
    if (o.listMetadata !== 'listing' && o.listMetadata !== 'head') throw bad('listMetadata', o.listMetadata, "'listing' or 'head'");
    out.listMetadata = o.listMetadata;
  }
  if (out.partSize !== undefined && out.partSize < 5 * 1024 * 1024) throw bad('partSize', o.partSize, 'at least 5 MiB (the S3 minimum)');
  if (out.multipartCopyThreshold !== undefined && (out.multipartCopyThreshold < 5 * 1024 * 1024 || out.multipartCopyThreshold > 5 * 1024 ** 3)) {
    throw bad('multipartCopyThreshold', o.multipartCopyThreshold, 'between 5 MiB and 5 GiB (the S3 limits of one copy)');
  }
  if (out.blockSize !== undefined && (out.blockSize < 4096 || out.blockSize > 1024 ** 3)) throw bad('blockSize', o.blockSize, 'between 4 KiB and 1 GiB');
  if (o.metrics !== undefined) {
    if (typeof o.metrics !== 'object' || o.metrics === null || typeof (o.metrics as { s3Stats?: unknown }).s3Stats !== 'function') throw bad('metrics', '[object]', 'a Metrics instance');
    out.metrics = o.metrics as Metrics;
  }
  if (o.logger !== undefined) {
    if (typeof o.logger !== 'object' || o.logger === null || typeof (o.logger as { warn?: unknown }).warn !== 'function') throw bad('logger', '[object]', 'a logger');
    out.logger = o.logger as Logger;
  }
  return out;
}
