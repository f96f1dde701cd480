/**
 * Shared set-up of the S3 tests: one s3rver per test file, a counting/fault proxy in front of it,
 * and backends on fresh key prefixes (so tests never see each other's objects).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { S3Backend } from '../../backends/s3/s3-backend.ts';
import type { S3BackendOptions } from '../../backends/s3/config.ts';
import type { Backend } from '../../src/vfs/backend.ts';
import { isVfsError, type VfsErrorCode } from '../../src/vfs/errors.ts';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';

export interface S3Env {
  s3: S3rverHandle;
  proxy: FaultProxy;
  raw: S3Client;
  /** A backend on `prefix` (a fresh one by default), talking through the proxy unless direct. */
  backend(o?: Partial<S3BackendOptions> & { direct?: boolean }): S3Backend;
  freshPrefix(): string;
  tempDir(): string;
  rawPut(key: string, body: Buffer | string, meta?: Record<string, string>): Promise<void>;
  rawGet(key: string): Promise<Buffer | undefined>;
  rawHead(key: string): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * One s3Env for the calling test file: started before its tests (handed to `set`, which may also
 * prepare shared objects), closed after them. Call at the top level of the file.
 */
export function useS3Env(set: (env: S3Env) => unknown): void {
  let env: S3Env | undefined;
  beforeAll(async () => {
    env = await s3Env();
    await set(env);
  });
  afterAll(async () => {
    await env?.close();
  });
}

export async function s3Env(): Promise<S3Env> {
  const s3 = await startS3rver();
  const proxy = await startFaultProxy(s3.endpoint);
  const raw = s3.client();
  const backends: Backend[] = [];
  const dirs: string[] = [];
  const env: S3Env = {
    s3,
    proxy,
    raw,
    freshPrefix: () => `t-${randomBytes(6).toString('hex')}`,
    backend(o = {}) {
      const { direct, ...rest } = o;
      const b = new S3Backend({
        bucket: s3.bucket,
        prefix: env.freshPrefix(),
        endpoint: direct === true ? s3.endpoint : proxy.endpoint,
        ...S3RVER_CREDENTIALS,
        retryBaseMs: 5,
        retryMaxMs: 50,
        ...rest,
      });
      backends.push(b);
      return b;
    },
    tempDir() {
      const d = mkdtempSync(join(tmpdir(), 'portico-s3test-'));
      dirs.push(d);
      return d;
    },
    async rawPut(key, body, meta) {
      await raw.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: typeof body === 'string' ? Buffer.from(body) : body, ...(meta ? { Metadata: meta } : {}) }));
    },
    async rawGet(key) {
      try {
        const r = await raw.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
        return Buffer.from(await r.Body!.transformToByteArray());
      } catch (e) {
        if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
        throw e;
      }
    },
    async rawHead(key) {
      try {
        await raw.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
        return true;
      } catch (e) {
        if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
        throw e;
      }
    },
    async close() {
      for (const b of backends) await b.close().catch(() => undefined);
      await proxy.stop();
      await s3.stop();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    },
  };
  return env;
}

export async function rejectsWith(p: Promise<unknown>, code: VfsErrorCode): Promise<void> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  if (e === undefined) throw new Error(`expected ${code}, but it succeeded`);
  if (!isVfsError(e, code)) throw new Error(`expected VfsError ${code}, got ${String((e as Error)?.message ?? e)}`);
}

export async function put(b: Backend, path: string, data: string | Buffer, o: { exclusive?: boolean } = {}): Promise<void> {
  const w = await b.createWriter(path, o);
  await w.write(typeof data === 'string' ? Buffer.from(data) : data);
  await w.commit();
}

export async function text(b: Backend, path: string): Promise<string> {
  return (await b.read(path, 0, 1 << 20)).toString();
}

export async function names(b: Backend, path: string, limit = 10_000): Promise<string[]> {
  const out: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await b.list(path, after === undefined ? { limit } : { after, limit });
    out.push(...page.entries.map((e) => e.name));
    if (page.next === undefined) return out;
    after = page.next;
  }
}

/** Deterministic pseudo-random bytes (fast to generate, cheap to verify). */
export function pattern(size: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  for (; i < size; i++) b[i] = i & 0xff;
  return b;
}
