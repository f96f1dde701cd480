/**
 * An on-premises store behind a certificate from a private CA (issue 16): s3rver behind a
 * TLS-terminating proxy this test starts, with a CA and server certificate made by openssl in a
 * temporary directory. AWS_CA_BUNDLE (what the AWS CLI and the other SDKs honour), the config's
 * s3.tls.ca and a share's options.tls.ca each make it connect; without them the error says what to
 * set, at once (no retries) and without opening the circuit.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createBackend } from '../../backends/index.ts';
import type { S3Backend } from '../../backends/s3/s3-backend.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Gateway } from '../../src/server/gateway.ts';
import type { Backend } from '../../src/vfs/backend.ts';
import { isVfsError } from '../../src/vfs/errors.ts';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';
import { put, text } from './fixture.ts';

let dir: string;
let s3: S3rverHandle;
let proxy: tls.Server;
let endpoint: string;
let caFile: string;
let otherCaFile: string;
let accepted = 0;
/** The last plaintext requests the proxy passed to s3rver (headers and bodies). */
let sent = '';

function makeCa(name: string): { key: string; cert: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { stdio: 'ignore' });
  return { key, cert };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portico-s3-tls-'));
  const ca = makeCa('Portico test CA');
  caFile = ca.cert;
  otherCaFile = makeCa('Some other CA').cert;
  const srvKey = join(dir, 'server.key');
  const csr = join(dir, 'server.csr');
  const srvCert = join(dir, 'server.pem');
  const ext = join(dir, 'server.ext');
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  execFileSync('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', srvKey, '-out', csr, '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', srvCert, '-days', '2', '-extfile', ext], { stdio: 'ignore' });
  s3 = await startS3rver();
  // TLS in front of s3rver's plain HTTP: what a load balancer with the company's certificate does.
  proxy = tls.createServer({ key: readFileSync(srvKey), cert: readFileSync(srvCert) }, (client) => {
    const up = net.connect(s3.port, '127.0.0.1');
    client.on('data', (d: Buffer) => {
      sent = (sent + d.toString('latin1')).slice(-64 * 1024);
    });
    client.pipe(up).pipe(client);
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
  });
  proxy.on('tlsClientError', () => undefined);
  // TCP connections, counted before the handshake (a refused certificate never completes one).
  proxy.on('connection', () => accepted++);
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  endpoint = `https://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const opened: Backend[] = [];
const savedBundle = process.env.AWS_CA_BUNDLE;
afterEach(async () => {
  if (savedBundle === undefined) delete process.env.AWS_CA_BUNDLE;
  else process.env.AWS_CA_BUNDLE = savedBundle;
  for (const b of opened.splice(0)) await b.close().catch(() => undefined);
});

async function backend(prefix: string, options: Record<string, unknown> = {}): Promise<S3Backend> {
  const b = (await createBackend(`s3://${s3.bucket}/${prefix}`, { endpoint, ...S3RVER_CREDENTIALS, ...options })) as S3Backend;
  opened.push(b);
  return b;
}

async function failure(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(() => undefined, (err: unknown) => err as Error);
  if (e === undefined) throw new Error('expected a failure');
  return e;
}

describe('S3 over TLS with a private CA', () => {
  it('AWS_CA_BUNDLE makes it connect', async () => {
    process.env.AWS_CA_BUNDLE = caFile;
    const b = await backend('bundle');
    await put(b, '/hello.txt', 'over TLS');
    expect(await text(b, '/hello.txt')).toBe('over TLS');
    await b.check();
  });

  it('uploads go with an unsigned payload over TLS (no SHA-256 of every byte), and the store takes them', async () => {
    process.env.AWS_CA_BUNDLE = caFile;
    const b = await backend('unsigned');
    sent = '';
    await put(b, '/u.txt', 'unsigned over TLS');
    expect(sent).toMatch(/^PUT [^\r\n]*u\.txt[^\r\n]* HTTP\/1\.1\r\n(?:[^\r\n]+\r\n)*x-amz-content-sha256: UNSIGNED-PAYLOAD\r\n/im);
    expect(await text(b, '/u.txt')).toBe('unsigned over TLS');
  });

  it('without it: EIO at once, naming the certificate problem and AWS_CA_BUNDLE / s3.tls.ca; the circuit stays closed', async () => {
    delete process.env.AWS_CA_BUNDLE;
    const b = await backend('none', { circuitFailureThreshold: 1 });
    const before = accepted;
    const t0 = Date.now();
    const e = await failure(b.check());
    expect(isVfsError(e, 'EIO')).toBe(true);
    expect(e.message).toMatch(/TLS certificate of https:\/\/127\.0\.0\.1:\d+ not trusted \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/);
    expect(e.message).toContain('set AWS_CA_BUNDLE=/path/to/ca.pem');
    expect(e.message).toContain('s3.tls.ca');
    // Not retried: one connection, no backoff.
    expect(accepted - before).toBe(1);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(b.transport.breaker.state).toBe('closed');
  });

  it('a bundle holding another CA: the message names the file and the setting it came from', async () => {
    process.env.AWS_CA_BUNDLE = otherCaFile;
    const b = await backend('other');
    const e = await failure(b.check());
    expect(e.message).toContain(`the CA certificates in ${otherCaFile} (AWS_CA_BUNDLE) do not verify it`);
  });

  it('a share option tls.ca wins over AWS_CA_BUNDLE; an unreadable CA file is a clear EINVAL', async () => {
    process.env.AWS_CA_BUNDLE = otherCaFile;
    const b = await backend('option', { tls: { ca: caFile } });
    await put(b, '/f', 'x');
    expect(await text(b, '/f')).toBe('x');
    const e = await failure(backend('missing', { tls: { ca: join(dir, 'nope.pem') } }));
    expect(isVfsError(e, 'EINVAL')).toBe(true);
    expect(e.message).toMatch(/S3 CA bundle .*nope\.pem \(from shares\[\]\.options\.tls\.ca\) cannot be read/);
  });

  it('the config key s3.tls.ca reaches every S3 share of a gateway', async () => {
    delete process.env.AWS_CA_BUNDLE;
    const tmp = mkdtempSync(join(tmpdir(), 'portico-s3-tls-gw-'));
    const config = loadConfig({
      env: { PORTICO_S3__TLS__CA: caFile },
      overrides: {
        'server.stateDir': join(tmp, 'state'),
        'admin.port': 0,
        'auth.bcryptRounds': 4,
        'log.level': 'silent',
        'log.audit.enabled': false,
        'protocols.webdav.port': 0,
        'protocols.nfs.port': 0,
        'protocols.smb.port': 0,
        shares: [{ name: 'tls', source: `s3://${s3.bucket}/gw`, options: { endpoint, ...S3RVER_CREDENTIALS } }],
      },
    });
    expect(config.s3.tls.ca).toBe(caFile);
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const logger = createLogger(config.log, { destination: sink });
    const gateway = new Gateway(config, { logger, audit: logger, stderr: sink, registry: new Map() });
    await gateway.start();
    try {
      await gateway.backends.get('tls')!.check();
    } finally {
      await gateway.stop(0);
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
