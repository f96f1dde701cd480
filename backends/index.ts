/**
 * Backend factory: turns a share's `source` string (documented in config/portico.example.yaml) into a Backend.
 *
 *   /abs/dir, ./rel/dir, file:///abs/dir  -> LocalBackend
 *   memory:, memory:posix                 -> MemoryBackend (POSIX-like)
 *   memory:objectstore                    -> MemoryBackend with object-store capabilities
 *   s3://bucket[/prefix]                  -> S3Backend (options: backends/s3/config.ts; endpoint from
 *                                            options.endpoint or AWS_ENDPOINT_URL_S3, path-style then)
 *   shard+...                             -> not built yet (ENOTSUP)
 */
import { fileURLToPath } from 'node:url';
import type { Backend, BackendCapabilities } from '../src/vfs/backend.ts';
import { VfsError } from '../src/vfs/errors.ts';
import { LocalBackend } from './local/local-backend.ts';
import { MEMORY_OBJECTSTORE_CAPABILITIES, MemoryBackend } from './memory/memory-backend.ts';
import { S3Backend } from './s3/s3-backend.ts';
import { parseS3Source } from './s3/config.ts';

/** A share's free-form `options`; each backend reads the keys it knows. */
export interface BackendSourceOptions {
  /** local: fsync a writer's data before commit (default true). */
  fsync?: boolean;
  /** memory: capacity in bytes (default 1 TiB). */
  totalBytes?: number;
  /** memory: capability overrides, applied after the variant's own. */
  capabilities?: Partial<BackendCapabilities>;
  [key: string]: unknown;
}

const SCHEME = /^([a-z][a-z0-9.-]*)(\+[a-z0-9.+-]*)?:/i;

export function createBackend(source: string, options: BackendSourceOptions = {}): Backend {
  if (typeof source !== 'string' || source.length === 0) throw new VfsError('EINVAL', 'backend source is empty');
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
    case 's3':
      return new S3Backend(parseS3Source(source, options));
    default:
      throw new VfsError('ENOTSUP', `backend ${scheme} not built yet`);
  }
}

function localOptions(options: BackendSourceOptions): { fsync?: boolean } {
  if (options.fsync === undefined) return {};
  if (typeof options.fsync !== 'boolean') throw new VfsError('EINVAL', 'local backend option fsync must be true or false');
  return { fsync: options.fsync };
}

export { LocalBackend, TEMP_PREFIX } from './local/local-backend.ts';
export { MemoryBackend } from './memory/memory-backend.ts';
export { S3Backend } from './s3/s3-backend.ts';
