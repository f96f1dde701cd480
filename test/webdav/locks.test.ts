/**
 * WebDAV locking and PROPPATCH against the real stack: LOCK without Depth (Windows), lock-null
 * resources, timeouts and refresh, UNLOCK errors, If header evaluation, cross-protocol enforcement
 * (a WebDAV lock blocks an SMB-style writer in another Session), Win32 properties and atomicity.
 */
import { describe, expect, it } from 'vitest';
import { isVfsError } from '../../src/vfs/errors.ts';
import { WinAttr } from '../../src/vfs/types.ts';
import { dav, useDav, type DavStack } from './helpers.ts';

let stack: DavStack;
const ALICE: [string, string] = ['alice', 'alice-pw'];
const BOB: [string, string] = ['bob', 'bob-pw'];
const LOCK_EXCL = '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>mailto:alice@example.com</D:href></D:owner></D:lockinfo>';
const LOCK_SHARED = '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>shared one</D:owner></D:lockinfo>';

useDav((s) => (stack = s), { alice: 'alice-pw', bob: 'bob-pw' }, { webdav: { maxLockTimeoutSeconds: 600 } });

async function lockOf(path: string, body = LOCK_EXCL, headers: Record<string, string> = {}, auth = ALICE): Promise<{ status: number; token: string; text: string }> {
  const r = await dav(stack, 'LOCK', path, { auth, body, headers });
  const token = /^<(.+)>$/.exec(String(r.headers['lock-token'] ?? ''))?.[1] ?? '';
  return { status: r.status, token, text: r.text };
}

const put = (path: string, body: string, headers: Record<string, string> = {}, auth = ALICE) => dav(stack, 'PUT', path, { auth, body, headers });

describe('LOCK / UNLOCK', () => {
  it('locks without a Depth header (Windows) as depth infinity and enforces the token', async () => {
    expect((await put('/disk/w.txt', 'one')).status).toBe(201);
    const l = await lockOf('/disk/w.txt');
    expect(l.status).toBe(200);
    expect(l.token).toMatch(/^opaquelocktoken:[0-9a-f-]{36}$/);
    expect(l.text).toContain('<D:depth>infinity</D:depth>');
    expect(l.text).toContain('<D:owner><D:href xmlns:D="DAV:">mailto:alice@example.com</D:href></D:owner>');
    expect(l.text).toContain('<D:timeout>Second-600</D:timeout>');
    expect(l.text).toContain('<D:lockroot><D:href>/disk/w.txt</D:href></D:lockroot>');
    expect((await put('/disk/w.txt', 'two')).status).toBe(423);
    expect((await dav(stack, 'DELETE', '/disk/w.txt', { auth: ALICE })).status).toBe(423);
    expect((await put('/disk/w.txt', 'two', { If: `(<${l.token}>)` })).status).toBe(204);
    // A token submitted by another principal does not count (RFC 4918 §6.4).
    expect((await put('/disk/w.txt', 'bob', { If: `(<${l.token}>)` }, BOB)).status).toBe(423);
    const pf = await dav(stack, 'PROPFIND', '/disk/w.txt', { auth: BOB, headers: { Depth: '0' }, body: '<D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>' });
    expect(pf.text).toContain(l.token);
    expect((await dav(stack, 'UNLOCK', '/disk/w.txt', { auth: BOB, headers: { 'Lock-Token': `<${l.token}>` } })).status).toBe(403);
    expect((await dav(stack, 'UNLOCK', '/disk/w.txt', { auth: ALICE, headers: { 'Lock-Token': '<opaquelocktoken:nope>' } })).status).toBe(409);
    expect((await dav(stack, 'UNLOCK', '/disk/w.txt', { auth: ALICE, headers: { 'Lock-Token': `<${l.token}>` } })).status).toBe(204);
    expect((await put('/disk/w.txt', 'three')).status).toBe(204);
    expect((await dav(stack, 'GET', '/disk/w.txt', { auth: ALICE })).text).toBe('three');
  });

  it('creates an empty locked resource on an unmapped URL (201)', async () => {
    const l = await lockOf('/disk/lock-null.txt', LOCK_EXCL, { Depth: '0' });
    expect(l.status).toBe(201);
    const get = await dav(stack, 'GET', '/disk/lock-null.txt', { auth: ALICE });
    expect(get.status).toBe(200);
    expect(get.body.length).toBe(0);
    expect((await put('/disk/lock-null.txt', 'data', { If: `(<${l.token}>)` })).status).toBe(204);
    expect((await dav(stack, 'GET', '/disk/lock-null.txt', { auth: ALICE })).text).toBe('data');
    const missingParent = await lockOf('/disk/no/such/file.txt');
    expect(missingParent.status).toBe(409);
  });

  it('caps timeouts, refreshes with If and no body, and answers 423 with no-conflicting-lock', async () => {
    await put('/disk/t.txt', 't');
    const l = await lockOf('/disk/t.txt', LOCK_EXCL, { Timeout: 'Infinite, Second-4100000000' });
    expect(l.text).toContain('<D:timeout>Second-600</D:timeout>');
    const r = await dav(stack, 'LOCK', '/disk/t.txt', { auth: ALICE, headers: { If: `(<${l.token}>)`, Timeout: 'Second-100' } });
    expect(r.status).toBe(200);
    expect(r.text).toContain('<D:timeout>Second-100</D:timeout>');
    expect((await dav(stack, 'LOCK', '/disk/t.txt', { auth: ALICE, headers: { If: '(<opaquelocktoken:other>)' } })).status).toBe(412);
    const again = await dav(stack, 'LOCK', '/disk/t.txt', { auth: BOB, body: LOCK_SHARED });
    expect(again.status).toBe(423);
    expect(again.text).toContain('<D:no-conflicting-lock><D:href>/disk/t.txt</D:href></D:no-conflicting-lock>');
  });

  it('shares shared locks and keeps them apart from exclusive ones', async () => {
    await put('/disk/s.txt', 's');
    const a = await lockOf('/disk/s.txt', LOCK_SHARED);
    const b = await lockOf('/disk/s.txt', LOCK_SHARED, {}, BOB);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect((await lockOf('/disk/s.txt', LOCK_EXCL)).status).toBe(423);
    // Both tokens are needed to write (each lock blocks those who do not submit it).
    expect((await put('/disk/s.txt', 'x', { If: `(<${a.token}>)` })).status).toBe(423);
  });

  it('depth-infinity collection locks cover new members; tagged If lists submit the token', async () => {
    expect((await dav(stack, 'MKCOL', '/disk/coll', { auth: ALICE })).status).toBe(201);
    const l = await lockOf('/disk/coll/', LOCK_EXCL, { Depth: 'infinity' });
    expect(l.status).toBe(200);
    expect((await put('/disk/coll/new.txt', 'n')).status).toBe(423);
    expect((await dav(stack, 'MKCOL', '/disk/coll/sub', { auth: ALICE })).status).toBe(423);
    const tagged = `<${stack.origin}/disk/coll/> (<${l.token}>)`;
    expect((await put('/disk/coll/new.txt', 'n', { If: tagged })).status).toBe(201);
    expect((await put('/disk/coll/new2.txt', 'n', { If: `</disk/coll> (<${l.token}>)` })).status).toBe(201);
    // Indirect refresh through a member.
    expect((await dav(stack, 'LOCK', '/disk/coll/new.txt', { auth: ALICE, headers: { If: `(<${l.token}>)` } })).status).toBe(200);
    // DELETE of the collection without the token: 423 on the members, nothing removed.
    const del = await dav(stack, 'DELETE', '/disk/coll/', { auth: ALICE });
    expect([207, 423]).toContain(del.status);
    expect((await dav(stack, 'GET', '/disk/coll/new.txt', { auth: ALICE })).status).toBe(200);
    expect((await dav(stack, 'DELETE', '/disk/coll/', { auth: ALICE, headers: { If: `(<${l.token}>)` } })).status).toBe(204);
  });
});

describe('partial failures', () => {
  it('DELETE of a collection with a locked member answers 207 and keeps what it could not remove', async () => {
    expect((await dav(stack, 'MKCOL', '/disk/pd', { auth: ALICE })).status).toBe(201);
    await put('/disk/pd/free.txt', 'f');
    await put('/disk/pd/held.txt', 'h');
    const l = await lockOf('/disk/pd/held.txt', LOCK_EXCL, { Depth: '0' }, BOB);
    expect(l.status).toBe(200);
    const r = await dav(stack, 'DELETE', '/disk/pd/', { auth: ALICE });
    expect(r.status).toBe(207);
    expect(r.text).toContain('<D:href>/disk/pd/held.txt</D:href><D:status>HTTP/1.1 423 Locked</D:status>');
    expect(r.text).not.toContain('free.txt');
    expect((await dav(stack, 'GET', '/disk/pd/free.txt', { auth: ALICE })).status).toBe(404);
    expect((await dav(stack, 'GET', '/disk/pd/held.txt', { auth: ALICE })).status).toBe(200);
  });

  it('MOVE onto a collection with a locked member answers 207 and moves nothing', async () => {
    expect((await dav(stack, 'MKCOL', '/disk/msrc', { auth: ALICE })).status).toBe(201);
    await put('/disk/msrc/a.txt', 'a');
    expect((await dav(stack, 'MKCOL', '/disk/mdst', { auth: ALICE })).status).toBe(201);
    await put('/disk/mdst/locked.txt', 'l');
    expect((await lockOf('/disk/mdst/locked.txt', LOCK_EXCL, { Depth: '0' }, BOB)).status).toBe(200);
    const r = await dav(stack, 'MOVE', '/disk/msrc/', { auth: ALICE, headers: { Destination: `${stack.origin}/disk/mdst/`, Overwrite: 'T' } });
    expect(r.status).toBe(207);
    expect(r.text).toContain('<D:href>/disk/mdst/locked.txt</D:href><D:status>HTTP/1.1 423 Locked</D:status>');
    expect((await dav(stack, 'GET', '/disk/msrc/a.txt', { auth: ALICE })).status).toBe(200);
    expect((await dav(stack, 'MOVE', '/disk/msrc/', { auth: ALICE, headers: { Destination: `${stack.origin}/disk/mdst/`, Overwrite: 'F' } })).status).toBe(412);
  });

  it('MOVE releases the locks of the moved resource (RFC 4918 §7.7)', async () => {
    await put('/disk/mv-locked.txt', 'm');
    const l = await lockOf('/disk/mv-locked.txt');
    const r = await dav(stack, 'MOVE', '/disk/mv-locked.txt', { auth: ALICE, headers: { Destination: '/disk/mv-moved.txt', If: `(<${l.token}>)` } });
    expect(r.status).toBe(201);
    expect((await put('/disk/mv-moved.txt', 'free again')).status).toBe(204);
  });
});

describe('If header evaluation', () => {
  it('ORs lists, ANDs conditions, supports Not and ETags, 412 when false', async () => {
    await put('/disk/if.txt', 'v1');
    const etag = String((await dav(stack, 'HEAD', '/disk/if.txt', { auth: ALICE })).headers['etag']);
    const cases: Array<[string, number]> = [
      [`([${etag}])`, 204],
      ['(["0-0"])', 412],
      ['(Not ["0-0"])', 204],
      ['(<DAV:no-lock>)', 412],
      ['(Not <DAV:no-lock>)', 204],
      [`(<DAV:no-lock>) ([${etag.replace(/"$/, 'x"')}]) (Not <DAV:no-lock> ["0-0"])`, 412],
      [`(<DAV:no-lock>) ([${etag.replace(/"$/, 'x"')}]) (Not <DAV:no-lock> [${etag}])`, 204],
      [`(Not <DAV:no-lock> ["0-0"]) ([${etag}])`, 204],
      [`(<DAV:no-lock> [${etag}])`, 412],
      [`<${stack.origin}/disk/if.txt> (["0-0"])`, 412],
      [`<http://other.example/disk/if.txt> (Not <DAV:no-lock>)`, 204],
      [`<http://other.example/disk/if.txt> ([${etag}])`, 412],
    ];
    for (const [h, want] of cases) {
      const cur = String((await dav(stack, 'HEAD', '/disk/if.txt', { auth: ALICE })).headers['etag']);
      const r = await put('/disk/if.txt', 'v', { If: h.replaceAll(etag, cur) });
      expect(r.status, h).toBe(want);
    }
  });
});

describe('cross-protocol', () => {
  it('a WebDAV lock blocks writes, deletes and renames from an SMB session until UNLOCK', async () => {
    await put('/disk/shared.txt', 'dav');
    const l = await lockOf('/disk/shared.txt');
    const sessions = stack.gateway.sessions!;
    const principal = (await sessions.authenticator.principalFor('alice'))!;
    const smb = sessions.openSession({ principal, protocol: 'smb', clientAddress: '127.0.0.1' });
    try {
      const h = await smb.open('disk', '/shared.txt', { access: { read: true, write: true, delete: false }, owner: 'smb-open' });
      await expect(smb.write(h, 0, Buffer.from('smb'))).rejects.toSatisfy((e) => isVfsError(e, 'ELOCKED'));
      expect((await smb.read(h, 0, 10)).toString()).toBe('dav');
      await expect(smb.unlink('disk', '/shared.txt')).rejects.toSatisfy((e) => isVfsError(e, 'ELOCKED'));
      await expect(smb.rename('disk', '/shared.txt', '/moved.txt')).rejects.toSatisfy((e) => isVfsError(e, 'ELOCKED'));
      expect((await dav(stack, 'UNLOCK', '/disk/shared.txt', { auth: ALICE, headers: { 'Lock-Token': `<${l.token}>` } })).status).toBe(204);
      expect(await smb.write(h, 0, Buffer.from('smb'))).toBe(3);
      await smb.close(h);
    } finally {
      await smb.end();
    }
    expect((await dav(stack, 'GET', '/disk/shared.txt', { auth: ALICE })).text).toBe('smb');
  });
});

describe('PROPPATCH', () => {
  const MS = 'urn:schemas-microsoft-com:';
  it('applies Win32 properties to real times and attributes and reports them with their namespace', async () => {
    await put('/disk/win.txt', 'w');
    const body =
      `<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="${MS}"><D:set><D:prop>` +
      '<Z:Win32CreationTime>Tue, 02 Jan 2018 03:04:05 GMT</Z:Win32CreationTime>' +
      '<Z:Win32LastAccessTime>Wed, 03 Jan 2018 03:04:05 GMT</Z:Win32LastAccessTime>' +
      '<Z:Win32LastModifiedTime>Thu, 04 Jan 2018 03:04:05 GMT</Z:Win32LastModifiedTime>' +
      '<Z:Win32FileAttributes>00000022</Z:Win32FileAttributes>' +
      '</D:prop></D:set></D:propertyupdate>';
    const r = await dav(stack, 'PROPPATCH', '/disk/win.txt', { auth: ALICE, body });
    expect(r.status).toBe(207);
    expect(r.text).not.toMatch(/HTTP\/1.1 (4|5)\d\d/);
    const attr = await stack.gateway.vfs!.getattr('disk', '/win.txt');
    expect(attr.mtimeNs).toBe(BigInt(Date.UTC(2018, 0, 4, 3, 4, 5)) * 1_000_000n);
    expect(attr.birthtimeNs).toBe(BigInt(Date.UTC(2018, 0, 2, 3, 4, 5)) * 1_000_000n);
    expect(attr.winAttributes & WinAttr.HIDDEN).toBe(WinAttr.HIDDEN);
    expect(attr.winAttributes & WinAttr.ARCHIVE).toBe(WinAttr.ARCHIVE);
    const pf = await dav(stack, 'PROPFIND', '/disk/win.txt', {
      auth: ALICE,
      headers: { Depth: '0' },
      body: `<D:propfind xmlns:D="DAV:"><D:prop><W:Win32LastModifiedTime xmlns:W="${MS}"/><W:Win32FileAttributes xmlns:W="${MS}"/><D:getlastmodified/><D:creationdate/></D:prop></D:propfind>`,
    });
    expect(pf.text).toContain(`xmlns:Z="${MS}"`);
    expect(pf.text).toContain('<Z:Win32LastModifiedTime>Thu, 04 Jan 2018 03:04:05 GMT</Z:Win32LastModifiedTime>');
    expect(pf.text).toContain('<Z:Win32FileAttributes>00000022</Z:Win32FileAttributes>');
    expect(pf.text).toContain('<D:getlastmodified>Thu, 04 Jan 2018 03:04:05 GMT</D:getlastmodified>');
    expect(pf.text).toContain('<D:creationdate>2018-01-02T03:04:05Z</D:creationdate>');
  });

  it('is atomic: one refused property fails all with 424 and stores nothing', async () => {
    await put('/disk/atomic.txt', 'a');
    const body =
      '<D:propertyupdate xmlns:D="DAV:" xmlns:x="http://example.com/x"><D:set><D:prop><x:color>red</x:color><D:getetag>"forged"</D:getetag></D:prop></D:set></D:propertyupdate>';
    const r = await dav(stack, 'PROPPATCH', '/disk/atomic.txt', { auth: ALICE, body });
    expect(r.status).toBe(207);
    expect(r.text).toMatch(/<D:getetag\/><\/D:prop><D:status>HTTP\/1.1 403 Forbidden<\/D:status><D:error><D:cannot-modify-protected-property\/>/);
    expect(r.text).toMatch(/<P:color xmlns:P="http:\/\/example.com\/x"\/><\/D:prop><D:status>HTTP\/1.1 424 Failed Dependency/);
    const pf = await dav(stack, 'PROPFIND', '/disk/atomic.txt', { auth: ALICE, headers: { Depth: '0' }, body: '<D:propfind xmlns:D="DAV:"><D:prop><x:color xmlns:x="http://example.com/x"/></D:prop></D:propfind>' });
    expect(pf.text).toContain('404 Not Found');
    const ok = await dav(stack, 'PROPPATCH', '/disk/atomic.txt', {
      auth: ALICE,
      body: '<D:propertyupdate xmlns:D="DAV:" xmlns:x="http://example.com/x"><D:set><D:prop><x:color xml:lang="en">red <x:b>bold</x:b></x:color></D:prop></D:set></D:propertyupdate>',
    });
    expect(ok.text).toContain('200 OK');
    const pf2 = await dav(stack, 'PROPFIND', '/disk/atomic.txt', { auth: ALICE, headers: { Depth: '0' }, body: '<D:propfind xmlns:D="DAV:"><D:prop><x:color xmlns:x="http://example.com/x"/></D:prop></D:propfind>' });
    expect(pf2.text).toContain('<ns0:color xmlns:ns0="http://example.com/x" xml:lang="en">red <ns0:b>bold</ns0:b></ns0:color>');
  });
});
