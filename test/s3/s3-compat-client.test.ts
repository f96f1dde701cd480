/**
 * How the gateway reaches a store, left to the SDK's standard mechanisms (issue 16): without keys
 * in the share options the default credential chain is used unchanged (environment, shared
 * credentials/config files with AWS_PROFILE, web identity, container/ECS credentials), and
 * path-style or virtual-hosted addressing is a per-share choice. Against stock s3rver, which checks
 * SigV4 signatures against its S3RVER/S3RVER keys: wrong credentials are 403 (EACCES).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createBackend } from '../../backends/index.ts';
import type { S3Backend } from '../../backends/s3/s3-backend.ts';
import { startStockS3rver, type StockS3rverHandle } from '../helpers/s3rver-stock.ts';
import { put, rejectsWith, text } from './fixture.ts';

let s3: StockS3rverHandle;
let dir: string;
beforeAll(async () => {
  // Virtual-hosted requests name the bucket in the host: <bucket>.s3.localhost.
  s3 = await startStockS3rver({ serviceEndpoint: 'localhost' });
  dir = mkdtempSync(join(tmpdir(), 'portico-s3-creds-'));
}, 30_000);
afterAll(async () => {
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const CHAIN_VARS = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE', 'AWS_SHARED_CREDENTIALS_FILE',
  'AWS_CONFIG_FILE', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_ROLE_SESSION_NAME', 'AWS_ENDPOINT_URL_STS', 'AWS_CONTAINER_CREDENTIALS_FULL_URI',
  'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_AUTHORIZATION_TOKEN', 'AWS_EC2_METADATA_DISABLED', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL', 'AWS_CA_BUNDLE'];
const saved = new Map(CHAIN_VARS.map((k) => [k, process.env[k]]));
const opened: S3Backend[] = [];
const servers: http.Server[] = [];

/** Only the given variables are set; shared files point into the test's directory, IMDS is off. */
function chainEnv(vars: Record<string, string>): void {
  for (const k of CHAIN_VARS) delete process.env[k];
  process.env.AWS_SHARED_CREDENTIALS_FILE = join(dir, 'no-credentials');
  process.env.AWS_CONFIG_FILE = join(dir, 'no-config');
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  Object.assign(process.env, vars);
}

afterEach(async () => {
  for (const b of opened.splice(0)) await b.close().catch(() => undefined);
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
  for (const [k, v] of saved) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

/** A share as the gateway builds it: no keys in its options. */
async function share(prefix: string, options: Record<string, unknown> = {}): Promise<S3Backend> {
  const b = (await createBackend(`s3://${s3.bucket}/${prefix}`, { endpoint: s3.endpoint, ...options })) as S3Backend;
  opened.push(b);
  return b;
}

async function serve(handler: http.RequestListener): Promise<string> {
  const srv = http.createServer(handler);
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
}

describe('the default credential chain, unchanged', () => {
  it('environment variables', async () => {
    chainEnv({ AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
    const b = await share('env');
    await put(b, '/f', 'env');
    expect(await text(b, '/f')).toBe('env');
  });

  it('shared credentials file with AWS_PROFILE; the default profile otherwise (wrong keys: EACCES)', async () => {
    const creds = join(dir, 'credentials');
    writeFileSync(creds, '[default]\naws_access_key_id = WRONG\naws_secret_access_key = WRONG\n\n[portico]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n');
    chainEnv({ AWS_SHARED_CREDENTIALS_FILE: creds, AWS_PROFILE: 'portico' });
    const b = await share('profile');
    await put(b, '/f', 'profile');
    expect(await text(b, '/f')).toBe('profile');
    chainEnv({ AWS_SHARED_CREDENTIALS_FILE: creds });
    const d = await share('profile');
    await rejectsWith(d.check(), 'EACCES');
    expect(d.transport.breaker.state).toBe('closed');
  });

  it('shared config file profile', async () => {
    const config = join(dir, 'config');
    writeFileSync(config, '[profile cfg]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\nregion = eu-west-3\n');
    chainEnv({ AWS_CONFIG_FILE: config, AWS_PROFILE: 'cfg' });
    const b = await share('cfg');
    await b.check();
  });

  it('container (ECS) credentials from AWS_CONTAINER_CREDENTIALS_FULL_URI', async () => {
    let asked = 0;
    const uri = await serve((req, res) => {
      asked++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ AccessKeyId: 'S3RVER', SecretAccessKey: 'S3RVER', Token: 'container-token', Expiration: new Date(Date.now() + 3600_000).toISOString() }));
    });
    chainEnv({ AWS_CONTAINER_CREDENTIALS_FULL_URI: `${uri}/creds` });
    const b = await share('ecs');
    await put(b, '/f', 'ecs');
    expect(await text(b, '/f')).toBe('ecs');
    expect(asked).toBeGreaterThanOrEqual(1);
  });

  it('web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, STS at AWS_ENDPOINT_URL_STS)', async () => {
    const token = join(dir, 'token');
    writeFileSync(token, 'a.web.identity.token');
    const calls: string[] = [];
    const sts = await serve((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        calls.push(body);
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(`<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>S3RVER</AccessKeyId><SecretAccessKey>S3RVER</SecretAccessKey><SessionToken>web-token</SessionToken><Expiration>${new Date(Date.now() + 3600_000).toISOString()}</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/portico/s</Arn><AssumedRoleId>AROAEXAMPLE:s</AssumedRoleId></AssumedRoleUser></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`);
      });
    });
    chainEnv({ AWS_WEB_IDENTITY_TOKEN_FILE: token, AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/portico', AWS_ROLE_SESSION_NAME: 's', AWS_ENDPOINT_URL_STS: sts });
    const b = await share('webid');
    await b.check();
    expect(calls.length).toBeGreaterThanOrEqual(1);
    expect(calls[0]).toContain('Action=AssumeRoleWithWebIdentity');
    expect(calls[0]).toContain('WebIdentityToken=a.web.identity.token');
  });
});

describe('addressing, per share', () => {
  /** Sends every request to 127.0.0.1 (no DNS for <bucket>.s3.localhost) after recording its host and path; the Host header, signed, stays. */
  function loopback(b: S3Backend, seen: string[]): void {
    b.transport.client.middlewareStack.add((next) => async (args) => {
      const req = args.request as { hostname: string; path: string };
      seen.push(`${req.hostname} ${req.path}`);
      req.hostname = '127.0.0.1';
      return next(args);
    }, { step: 'finalizeRequest', priority: 'low', name: 'testLoopback' });
    // PutObject and HeadObject go around the SDK (backends/s3/direct.ts): the same for them.
    if (b.transport.direct !== undefined) {
      b.transport.direct.onRequest = (req) => {
        seen.push(`${req.hostname} ${req.path}`);
        req.hostname = '127.0.0.1';
      };
    }
  }

  it('path-style by default with an endpoint; virtual-hosted with forcePathStyle: false', async () => {
    chainEnv({ AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
    const endpoint = `http://s3.localhost:${s3.port}`;
    const pathSeen: string[] = [];
    const p = await share('addr', { endpoint });
    loopback(p, pathSeen);
    await put(p, '/f', 'path style');
    expect(pathSeen.some((x) => x === `s3.localhost /${s3.bucket}/addr/f`)).toBe(true);
    const vhostSeen: string[] = [];
    const v = await share('addr', { endpoint, forcePathStyle: false });
    loopback(v, vhostSeen);
    expect(await text(v, '/f')).toBe('path style');
    await put(v, '/g', 'virtual hosted');
    expect(vhostSeen.some((x) => x === `${s3.bucket}.s3.localhost /addr/g`)).toBe(true);
    expect(vhostSeen.every((x) => x.startsWith(`${s3.bucket}.s3.localhost `))).toBe(true);
    // p wrote in / and knows its membership: another client's new name shows after the TTL or invalidate().
    p.invalidate('/g');
    expect(await text(p, '/g')).toBe('virtual hosted');
  });
});
