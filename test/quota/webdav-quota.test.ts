/**
 * Quotas through real WebDAV: a PUT over quota answers 507 Insufficient Storage (RFC 4918 §11.5)
 * and the old content stays; MKCOL past the files limit is 507 too; PROPFIND's RFC 4331
 * quota-available-bytes / quota-used-bytes agree with statfs through a session; a restart of the
 * gateway keeps the usage (a clean stop: no scan).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dav, startDav, type DavStack } from '../webdav/helpers.ts';
import { alice } from '../helpers/vfs-env.ts';

const AUTH: [string, string] = ['alice', 'alice-pw'];
const QUOTA = { bytes: 10_000, files: 5 };

const tmp = mkdtempSync(join(tmpdir(), 'portico-davquota-'));
const quotaDir = join(tmp, 'quota-disk');
mkdirSync(quotaDir);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function boot(): Promise<DavStack> {
  const stack = await startDav({
    tmp,
    shares: [
      { name: 'q', source: quotaDir, quota: QUOTA },
      { name: 'qmem', source: 'memory:objectstore', quota: QUOTA },
    ],
  });
  // Users live in the state directory: a restart finds alice already there.
  await stack.addUser('alice', 'alice-pw').catch(() => undefined);
  return stack;
}

const PROPFIND_QUOTA = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>`;

async function quotaProps(stack: DavStack, path: string): Promise<{ available: number; used: number }> {
  const r = await dav(stack, 'PROPFIND', path, { auth: AUTH, headers: { Depth: '0', 'Content-Type': 'application/xml' }, body: PROPFIND_QUOTA });
  expect(r.status).toBe(207);
  const num = (name: string): number => Number(new RegExp(`<(?:\\w+:)?${name}[^>]*>(\\d+)</`).exec(r.text)?.[1] ?? NaN);
  return { available: num('quota-available-bytes'), used: num('quota-used-bytes') };
}

async function statfs(stack: DavStack, share: string): Promise<{ available: number; used: number }> {
  const s = stack.gateway.sessions!.openSession({ principal: alice, protocol: 'webdav', clientAddress: '127.0.0.1' });
  try {
    const st = await s.statfs(share);
    return { available: st.availableBytes, used: st.totalBytes - st.freeBytes };
  } finally {
    await s.end();
  }
}

describe.each(['q', 'qmem'])('WebDAV on a share with a quota (%s)', (share) => {
  let stack: DavStack;
  afterAll(async () => {
    await stack?.stop({ keep: true });
  });

  it('PUT over quota is 507 and the old content stays; PROPFIND quota properties agree with statfs', async () => {
    stack = await boot();
    await stack.gateway.vfs!.volume(share).quota!.ready;
    expect((await dav(stack, 'PUT', `/${share}/a.bin`, { auth: AUTH, body: Buffer.alloc(6000, 1) })).status).toBe(201);
    const over = await dav(stack, 'PUT', `/${share}/a.bin`, { auth: AUTH, body: Buffer.alloc(12_000, 2) });
    expect(over.status).toBe(507);
    const get = await dav(stack, 'GET', `/${share}/a.bin`, { auth: AUTH });
    expect(get.status).toBe(200);
    expect(get.body.equals(Buffer.alloc(6000, 1))).toBe(true);
    expect((await dav(stack, 'PUT', `/${share}/new.bin`, { auth: AUTH, body: Buffer.alloc(5000, 3) })).status).toBe(507);
    expect((await dav(stack, 'GET', `/${share}/new.bin`, { auth: AUTH })).status).toBe(404);
    expect((await dav(stack, 'PUT', `/${share}/b.bin`, { auth: AUTH, body: Buffer.alloc(1000, 3) })).status).toBe(201);
    const props = await quotaProps(stack, `/${share}/`);
    expect(props).toEqual({ available: 3000, used: 7000 });
    expect(await statfs(stack, share)).toEqual(props);
    // Past the files limit (5 names): MKCOL is 507 too.
    for (const d of ['d1', 'd2', 'd3']) expect((await dav(stack, 'MKCOL', `/${share}/${d}/`, { auth: AUTH })).status).toBe(201);
    expect((await dav(stack, 'MKCOL', `/${share}/d4/`, { auth: AUTH })).status).toBe(507);
    expect((await dav(stack, 'DELETE', `/${share}/b.bin`, { auth: AUTH })).status).toBe(204);
    expect(await quotaProps(stack, `/${share}/`)).toEqual({ available: 4000, used: 6000 });
    // And the same figures in the metrics.
    const metrics = await stack.gateway.metrics.registry.metrics();
    expect(metrics).toContain(`portico_quota_used{share="${share}",kind="bytes"} 6000`);
    expect(metrics).toContain(`portico_quota_used{share="${share}",kind="files"} 4`);
    expect(metrics).toContain(`portico_quota_limit{share="${share}",kind="bytes"} 10000`);
  });

  it.runIf(share === 'q')('a restart keeps the usage', async () => {
    await stack.stop({ keep: true });
    stack = await boot();
    expect(stack.gateway.vfs!.volume(share).quota!.scans).toBe(0);
    expect(await quotaProps(stack, `/${share}/`)).toEqual({ available: 4000, used: 6000 });
    expect(await statfs(stack, share)).toEqual({ available: 4000, used: 6000 });
  });
});
