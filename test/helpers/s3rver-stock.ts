/**
 * Stock s3rver 3.7, as a new user would run it: the npm package's own command
 * (`node node_modules/s3rver/bin/s3rver.js`) in a process of its own, without any of the fixes
 * test/helpers/s3rver.ts patches into its store and router. It binds 127.0.0.1 on a port it picks
 * (`-p 0`, read back from its "listening" line), keeps its files in a temporary directory, and is
 * stopped by PID (SIGTERM, then SIGKILL after 5 s).
 *
 * `legacyProvider` (default true) starts it under NODE_OPTIONS=--openssl-legacy-provider: its
 * ListObjectsV2 continuation tokens are DES-encrypted, which OpenSSL 3 refuses without the legacy
 * provider (every truncated V2 listing is then a 500). With false it shows that failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { S3RVER_CREDENTIALS, type S3rverHandle } from './s3rver.ts';

const require = createRequire(import.meta.url);
const BIN = join(dirname(require.resolve('s3rver/package.json')), 'bin', 's3rver.js');

export interface StockS3rverHandle extends S3rverHandle {
  pid: number;
  /** Last lines of its output (request log and errors), for failure messages. */
  logTail(): string;
}

export interface StockS3rverOptions {
  bucket?: string;
  legacyProvider?: boolean;
  /** Root for virtual-hosted addressing (`<bucket>.s3.<serviceEndpoint>`); s3rver's default is amazonaws.com. */
  serviceEndpoint?: string;
}

export async function startStockS3rver(o: StockS3rverOptions = {}): Promise<StockS3rverHandle> {
  const bucket = o.bucket ?? 'portico-test';
  const dir = mkdtempSync(join(tmpdir(), 'portico-s3rver-stock-'));
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  if (o.legacyProvider !== false) env.NODE_OPTIONS = '--openssl-legacy-provider';
  const args = [BIN, '-d', dir, '-a', '127.0.0.1', '-p', '0', '--configure-bucket', bucket];
  if (o.serviceEndpoint !== undefined) args.push('--service-endpoint', o.serviceEndpoint);
  // process.execPath: the Node 24 that runs the tests (the npm `node` package), not the system one.
  const child: ChildProcess = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  const keep = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') tail.push(line);
    if (tail.length > 200) tail.splice(0, tail.length - 200);
  };
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stock s3rver did not start within 15 s:\n${tail.join('\n')}`)), 15_000);
    let buf = '';
    const onData = (chunk: Buffer): void => {
      keep(chunk);
      buf += chunk.toString('utf8');
      const m = /S3rver listening on [^:\s]+:(\d+)/.exec(buf);
      if (m !== null) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on('data', onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`stock s3rver exited at start:\n${tail.join('\n')}`));
    });
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const clients: S3Client[] = [];
  let stopped = false;
  return {
    endpoint,
    port,
    bucket,
    dir,
    pid: child.pid!,
    logTail: () => tail.slice(-40).join('\n'),
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
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid!, 'SIGTERM');
        const killer = setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
        }, 5000);
        await exited;
        clearTimeout(killer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
