/**
 * Issue 15 §2: listings do not leak what the rules hide. Members the principal may not read are
 * absent from every listing form (PROPFIND allprop, an explicit <prop> list, propname, Depth
 * infinity, the HTML page and the plain-text listing), decided once in the session layer; a member
 * of the rule's group sees them. A depth-infinity PROPFIND over a denied member completes.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { dav, useDav, type DavStack } from '../webdav/helpers.ts';

const ALICE: [string, string] = ['alice', 'alice-pw'];
const FRED: [string, string] = ['fred', 'fred-pw'];

let s: DavStack;
useDav((x) => (s = x), {}, {
  webdav: { depthInfinity: true },
  shares: [
    {
      name: 'files',
      source: mkdtempSync(join(tmpdir(), 'portico-sec-list-')),
      caseSensitive: false,
      rules: [
        { path: '/corp/Finance', groups: ['finance'], allow: ['read', 'write'] },
        { path: '/corp/Finance', users: ['*'], deny: ['read', 'write'] },
        // Read-only for alice, so it stays listed.
        { path: '/corp/ro', users: ['alice'], deny: ['write'] },
      ],
    },
  ],
});

const BODIES: Record<string, string> = {
  allprop: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>',
  // Live properties only (no displayname, which may be stored dead): the form that leaked.
  live: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getcontentlength/><D:getlastmodified/><D:getetag/><D:resourcetype/></D:prop></D:propfind>',
  prop: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getcontentlength/><D:getlastmodified/><D:getetag/><D:displayname/></D:prop></D:propfind>',
  propname: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>',
  dead: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:x="urn:x"><D:prop><x:color/><D:getetag/></D:prop></D:propfind>',
};

beforeAll(async () => {
  await s.addUser('alice', 'alice-pw', ['staff']);
  await s.addUser('fred', 'fred-pw', ['finance']);
  for (const p of ['/files/corp', '/files/corp/finance', '/files/corp/ro', '/files/corp/finance/deep']) {
    expect((await dav(s, 'MKCOL', p, { auth: FRED })).status).toBe(201);
  }
  for (const [p, b] of [['/files/corp/finance/payroll.txt', 'salaries'], ['/files/corp/readme.txt', 'hi'], ['/files/corp/finance/deep/x.txt', 'x']] as const) {
    expect((await dav(s, 'PUT', p, { auth: FRED, body: b })).status).toBe(201);
  }
  const patch = '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:x="urn:x"><D:set><D:prop><x:color>red</x:color></D:prop></D:set></D:propertyupdate>';
  expect((await dav(s, 'PROPPATCH', '/files/corp/finance', { auth: FRED, body: patch })).status).toBe(207);
});

describe('listings hide members the principal may not read', () => {
  for (const [form, body] of Object.entries(BODIES)) {
    it(`PROPFIND Depth 1 (${form})`, async () => {
      const a = await dav(s, 'PROPFIND', '/files/corp/', { auth: ALICE, headers: { Depth: '1' }, body });
      expect(a.status).toBe(207);
      expect(a.text).toContain('/files/corp/readme.txt');
      expect(a.text).toContain('/files/corp/ro/');
      expect(a.text.toLowerCase()).not.toContain('finance');
      const f = await dav(s, 'PROPFIND', '/files/corp/', { auth: FRED, headers: { Depth: '1' }, body });
      expect(f.text).toContain('/files/corp/finance/');
    });
  }

  it('PROPFIND Depth infinity completes and leaves the denied subtree out', async () => {
    const a = await dav(s, 'PROPFIND', '/files/', { auth: ALICE, headers: { Depth: 'infinity' }, body: BODIES.live });
    expect(a.status).toBe(207);
    expect(a.text.trimEnd().endsWith('</D:multistatus>')).toBe(true);
    expect(a.text).toContain('/files/corp/readme.txt');
    expect(a.text.toLowerCase()).not.toContain('finance');
    const f = await dav(s, 'PROPFIND', '/files/', { auth: FRED, headers: { Depth: 'infinity' }, body: BODIES.live });
    expect(f.text).toContain('/files/corp/finance/deep/x.txt');
  });

  it('the HTML page and the plain listing', async () => {
    const html = await dav(s, 'GET', '/files/corp/', { auth: ALICE, headers: { Accept: 'text/html' } });
    expect(html.status).toBe(200);
    expect(html.text).toContain('readme.txt');
    expect(html.text.toLowerCase()).not.toContain('finance');
    const text = await dav(s, 'GET', '/files/corp/', { auth: ALICE });
    expect(text.text.split('\n').sort()).toEqual(['', 'readme.txt', 'ro/']);
    const fred = await dav(s, 'GET', '/files/corp/', { auth: FRED });
    expect(fred.text).toContain('finance/');
  });

  it('case variants of the hidden name are denied too (case-insensitive share)', async () => {
    for (const p of ['/files/corp/FINANCE/payroll.txt', '/files/CORP/finance/payroll.txt']) {
      expect((await dav(s, 'GET', p, { auth: ALICE })).status).toBe(403);
    }
  });
});
