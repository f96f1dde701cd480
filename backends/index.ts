/**
 * Backend factory: turns a share's `source` string (documented in config/portico.example.yaml) into a Backend.
 *
 *   /abs/dir, ./rel/dir, file:///abs/dir  -> LocalBackend
 *   memory:, memory:posix                 -> MemoryBackend (POSIX-like)
 *   memory:objectstore                    -> MemoryBackend with object-store capabilities
 *   s3://bucket[/prefix]                  -> S3Backend (options: backends/s3/config.ts; endpoint from
 *                                            options.endpoint or AWS_ENDPOINT_URL_S3, path-style then)
 *   shard+file:///dir,
 *   shard+s3://bucket[/prefix]            -> ShardBackend, a read-only shard set (backends/shard/shard-backend.ts;
 *                                            options there; S3 sets take the S3 options too)
 *
 * Async because the S3 backend is loaded on demand: its module graph (the AWS SDK) costs about
 * 25 MB of RSS and noticeable start-up time, which a gateway serving only local directories should
 * not pay. Sources are validated before anything is loaded, so a bad `s3://` source fails the same
 * way either way. Import S3Backend from './s3/s3-backend.ts' directly when it is wanted eagerly.
 */
import { fileURLToPath } from 'node:url';
import type { Backend, BackendCapabilities } from '../src/vfs/backend.ts';
import { VfsError } from '../src/vfs/errors.ts';
import { LocalBackend, type LocalBackendOptions } from './local/local-backend.ts';
import { MEMORY_OBJECTSTORE_CAPABILITIES, MemoryBackend } from './memory/memory-backend.ts';
// config.ts is plain option parsing (no SDK): safe to load eagerly.
import { parseS3Source } from './s3/config.ts';

/** A share's free-form `options`; each backend reads the keys it knows. */
export interface BackendSourceOptions {
  /** local: durable whole-file writes (fsync of data and directory before the commit returns; default true). */
  fsync?: boolean;
  /** local: synchronous lookups and small reads while they are fast (backends/local/inline-io.ts; default 'auto'). */
  inlineIo?: boolean | 'auto';
  /** local: read-only descriptors kept open for reuse (backends/local/fd-cache.ts; default 256, 0 = none). */
  readFdCache?: number;
  /** memory: capacity in bytes (default 1 TiB). */
  totalBytes?: number;
  /** memory: capability overrides, applied after the variant's own. */
  capabilities?: Partial<BackendCapabilities>;
  [key: string]: unknown;
}

const SCHEME = /^([a-z][a-z0-9.-]*)(\+[a-z0-9.+-]*)?:/i;

export async function createBackend(source: string, options: BackendSourceOptions = {}): Promise<Backend> {
  if (typeof source !== 'string' || source.length === 0) throw new VfsError('EINVAL', 'backend source is empty');
  // Loaded on demand like S3 (an S3 set loads the SDK; lz4 is native code).
  if (/^shard\+/i.test(source)) {
    const { ShardBackend } = await import('./shard/shard-backend.ts');
    return ShardBackend.open(source, options);
  }
  const m = SCHEME.exec(source);
  // A one-letter "scheme" is a Windows drive letter, not a URL.
  if (m === null || ((m[1] as string).length === 1 && m[2] === undefined)) {
    return new LocalBackend(source, localOptions(options));
  }
  const scheme = (m[1] as string).toLowerCase();
  if (m[2] !== undefined) throw new VfsError('ENOTSUP', `backend ${scheme} not built yet`);
  switch (scheme) {
    case 'file': {
      let dir: string;
      try {
        dir = fileURLToPath(source);
      } catch (e) {
        throw new VfsError('EINVAL', `bad file URL '${source}' (expected file:///absolute/dir)`, { cause: e });
      }
      return new LocalBackend(dir, localOptions(options));
    }
    case 'memory': {
      const variant = source.slice(m[0].length);
      if (variant !== '' && variant !== 'posix' && variant !== 'objectstore') {
        throw new VfsError('EINVAL', `unknown memory backend variant '${variant}' (expected memory: or memory:objectstore)`);
      }
      const base = variant === 'objectstore' ? MEMORY_OBJECTSTORE_CAPABILITIES : {};
      const extra = typeof options.capabilities === 'object' && options.capabilities !== null ? options.capabilities : {};
      const memOptions: ConstructorParameters<typeof MemoryBackend>[0] = { capabilities: { ...base, ...extra } };
      if (options.totalBytes !== undefined) {
        if (typeof options.totalBytes !== 'number' || !(options.totalBytes > 0)) {
          throw new VfsError('EINVAL', 'memory backend option totalBytes must be a positive number');
        }
        memOptions.totalBytes = options.totalBytes;
      }
      return new MemoryBackend(memOptions);
    }
    case 's3': {
      const parsed = parseS3Source(source, options);
      const { S3Backend } = await import('./s3/s3-backend.ts');
      return new S3Backend(parsed);
    }
    default:
      throw new VfsError('ENOTSUP', `backend ${scheme} not built yet`);
  }
}

function localOptions(options: BackendSourceOptions): LocalBackendOptions {
  const out: LocalBackendOptions = {};
  if (options.fsync !== undefined) {
    if (typeof options.fsync !== 'boolean') throw new VfsError('EINVAL', 'local backend option fsync must be true or false');
    out.fsync = options.fsync;
  }
  if (options.inlineIo !== undefined) {
    if (options.inlineIo !== true && options.inlineIo !== false && options.inlineIo !== 'auto') {
      throw new VfsError('EINVAL', 'local backend option inlineIo must be auto, true or false');
    }
    out.inlineIo = options.inlineIo;
  }
  if (options.readFdCache !== undefined) {
    if (typeof options.readFdCache !== 'number' || !Number.isInteger(options.readFdCache) || options.readFdCache < 0 || options.readFdCache > 65536) {
      throw new VfsError('EINVAL', 'local backend option readFdCache must be a whole number from 0 to 65536');
    }
    out.readFdCache = options.readFdCache;
  }
  return out;
}

export { LocalBackend, TEMP_PREFIX } from './local/local-backend.ts';
export { MemoryBackend } from './memory/memory-backend.ts';
// No re-export of S3Backend here: it would load the AWS SDK for every importer of this module.
