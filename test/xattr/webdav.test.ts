/**
 * Extended attributes seen over WebDAV (protocols/webdav/xattr-props.ts): an xattr set through the
 * session (as NFS SETXATTR will) is a dead property {urn:portico:xattr}NAME in a real PROPFIND
 * (allprop, propname, by name, Depth 1), with odd names escaped and binary values in base64, and
 * the multistatus stays well-formed XML (parsed with saxes, namespace-aware). Streams are not shown;
 * PROPPATCH cannot write into either namespace.
 */
import { describe, expect, it } from 'vitest';
import { SaxesParser } from 'saxes';
import { dav, useDav, type DavStack } from '../webdav/helpers.ts';
import type { Session } from '../../src/session/session.ts';
import { STREAM_NS, XATTR_NS } from '../../src/vfs/xattrs.ts';
import { decodeXmlName, encodeXmlName, xattrElement } from '../../protocols/webdav/xattr-props.ts';

const AUTH: [string, string] = ['alice', 'pw-alice'];

interface Shown {
  href: string;
  /** xattr name (decoded) -> value bytes, from 200 propstats. */
  xattrs: Map<string, Buffer>;
  /** Every property element name seen in a 200 propstat, as {ns}local. */
  names: string[];
}

/** A namespace-aware parse of a multistatus; throws on anything that is not well-formed XML. */
function parse(body: string): Shown[] {
  const out: Shown[] = [];
  const parser = new SaxesParser({ xmlns: true, position: false });
  const stack: Array<{ uri: string; local: string; attrs: Record<string, string> }> = [];
  let text = '';
  let cur: Shown | undefined;
  let pending: Array<[string, Buffer]> = [];
  let pendingNames: string[] = [];
  let status = '';
  parser.on('error', (e) => {
    throw new Error(`malformed multistatus: ${e.message}\n${body}`);
  });
  parser.on('opentag', (t) => {
    const attrs: Record<string, string> = {};
    for (const a of Object.values(t.attributes)) if (typeof a !== 'string') attrs[a.local] = a.value;
    stack.push({ uri: t.uri ?? '', local: t.local ?? '', attrs });
    if (t.uri === 'DAV:' && t.local === 'response') cur = { href: '', xattrs: new Map(), names: [] };
    if (stack.length === 5) pendingNames.push(`{${t.uri}}${t.local}`);
    text = '';
  });
  parser.on('text', (t) => (text += t));
  parser.on('closetag', () => {
    const el = stack.pop()!;
    if (el.uri === XATTR_NS && stack.length === 4) {
      const value = el.attrs.encoding === 'base64' ? Buffer.from(text, 'base64') : Buffer.from(text, 'utf8');
      pending.push([decodeXmlName(el.local), value]);
    } else if (el.uri === 'DAV:' && el.local === 'status') status = text;
    else if (el.uri === 'DAV:' && el.local === 'href' && stack.length === 2) cur!.href = text;
    else if (el.uri === 'DAV:' && el.local === 'propstat') {
      if (/ 200 /.test(status)) {
        for (const [k, v] of pending) cur!.xattrs.set(k, v);
        cur!.names.push(...pendingNames);
      }
      pending = [];
      pendingNames = [];
    } else if (el.uri === 'DAV:' && el.local === 'response') out.push(cur!);
    text = '';
  });
  parser.write(body).close();
  return out;
}

const ODD: Array<[string, Buffer]> = [
  ['plain', Buffer.from('hello')],
  ['xdg.origin.url', Buffer.from('https://example.com/a?b=1&c=<2>')],
  ['com.apple.metadata:kMDItemWhereFroms', Buffer.from('bplist00\u00a1\u0001_\u0010\u0013https://example.com\u0008\u000a', 'latin1')],
  ['1starts-with-digit', Buffer.from('digit')],
  ['-dash.first', Buffer.from('dash')],
  ['has space and tab\t', Buffer.from('line1\r\nline2\n\ttabbed  ')],
  ['ctl\u0001\u001fname', Buffer.from([0])],
  ['under_xscore_x0041_', Buffer.from('literal escape-like text')],
  ['_x', Buffer.from('')],
  ['émoji😀 ünïcode', Buffer.from('😀 ünïcode value')],
  ['private\u{F0000}plane', Buffer.from([0xc3, 0x28])],
  ['xml-looking<&>"\'', Buffer.from('<not>&amp;an element</not>')],
  ['bom', Buffer.from([0xef, 0xbb, 0xbf, 0x41])],
  ['nonchar', Buffer.from('a\uFFFEb')],
];

describe('xattrs as WebDAV dead properties', () => {
  let stack: DavStack;
  useDav((s) => (stack = s), { alice: 'pw-alice' });
  const session = (): Session =>
    stack.gateway.sessions!.openSession({ principal: { user: 'alice', uid: 1000, gid: 1000, groups: [], guest: false }, protocol: 'nfs', clientAddress: '127.0.0.1' });

  const propfind = async (path: string, body: string, depth = '0'): Promise<Shown[]> => {
    const r = await dav(stack, 'PROPFIND', path, { auth: AUTH, headers: { Depth: depth, 'Content-Type': 'application/xml' }, body });
    expect(r.status).toBe(207);
    return parse(r.text);
  };
  const ALLPROP = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>';
  const PROPNAME = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>';

  it('an xattr set through the session shows in PROPFIND allprop with its exact bytes, odd names and values included, as well-formed XML', async () => {
    for (const share of ['mem', 'disk']) {
      expect((await dav(stack, 'MKCOL', `/${share}/x1`, { auth: AUTH })).status).toBe(201);
      expect((await dav(stack, 'PUT', `/${share}/x1/f.txt`, { auth: AUTH, body: 'content' })).status).toBe(201);
      const s = session();
      for (const [name, value] of ODD) await s.setXattr(share, '/x1/f.txt', name, value);
      await s.setXattr(share, '/x1', 'on-the-dir', Buffer.from('d'));
      await s.setXattr(share, '/x1/f.txt', 'AFP_AfpInfo', Buffer.alloc(60, 0), { space: 'stream' });
      await s.end();

      const [file] = await propfind(`/${share}/x1/f.txt`, ALLPROP);
      expect(file!.xattrs).toEqual(new Map(ODD));
      // Streams are not properties.
      expect(file!.names.some((n) => n.startsWith(`{${STREAM_NS}}`))).toBe(false);

      const depth1 = await propfind(`/${share}/x1/`, ALLPROP, '1');
      expect(depth1.map((r) => [r.href.replace(/^.*\/x1\//, ''), r.xattrs.size])).toEqual([
        ['', 1],
        ['f.txt', ODD.length],
      ]);
      expect(depth1[1]!.xattrs).toEqual(new Map(ODD));

      const [names] = await propfind(`/${share}/x1/f.txt`, PROPNAME);
      expect(names!.names.filter((n) => n.startsWith(`{${XATTR_NS}}`)).map((n) => decodeXmlName(n.slice(XATTR_NS.length + 2))).sort()).toEqual(ODD.map(([n]) => n).sort());
    }
  });

  it('a prop PROPFIND finds an xattr by its escaped name; a missing one is 404', async () => {
    expect((await dav(stack, 'PUT', '/mem/byname', { auth: AUTH, body: 'x' })).status).toBe(201);
    const s = session();
    await s.setXattr('mem', '/byname', 'com.apple.metadata:kMDItemWhereFroms', Buffer.from('from'));
    await s.end();
    const local = encodeXmlName('com.apple.metadata:kMDItemWhereFroms');
    expect(local).toBe('com.apple.metadata_x003A_kMDItemWhereFroms');
    const body = `<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:X="${XATTR_NS}"><D:prop><X:${local}/><X:absent/></D:prop></D:propfind>`;
    const r = await dav(stack, 'PROPFIND', '/mem/byname', { auth: AUTH, headers: { Depth: '0' }, body });
    expect(r.status).toBe(207);
    const [shown] = parse(r.text);
    expect(shown!.xattrs).toEqual(new Map([['com.apple.metadata:kMDItemWhereFroms', Buffer.from('from')]]));
    expect(r.text).toMatch(/<D:propstat><D:prop><P:absent xmlns:P="urn:portico:xattr"\/><\/D:prop><D:status>HTTP\/1.1 404/);
  });

  it('PROPPATCH cannot write or remove an xattr or a stream (403), and its own dead properties do not become xattrs', async () => {
    expect((await dav(stack, 'PUT', '/mem/pp', { auth: AUTH, body: 'x' })).status).toBe(201);
    const s = session();
    await s.setXattr('mem', '/pp', 'keep', Buffer.from('bytes'));
    const patch = (inner: string): Promise<{ status: number; text: string }> =>
      dav(stack, 'PROPPATCH', '/mem/pp', {
        auth: AUTH,
        body: `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:X="${XATTR_NS}" xmlns:S="${STREAM_NS}" xmlns:O="urn:other">${inner}</D:propertyupdate>`,
      });
    for (const inner of [
      '<D:set><D:prop><X:keep>changed</X:keep></D:prop></D:set>',
      '<D:remove><D:prop><X:keep/></D:prop></D:remove>',
      '<D:set><D:prop><X:new>v</X:new></D:prop></D:set>',
      '<D:set><D:prop><S:AFP_AfpInfo>v</S:AFP_AfpInfo></D:prop></D:set>',
    ]) {
      const r = await patch(inner);
      expect(r.status).toBe(207);
      expect(r.text).toContain('403');
      expect(r.text).toContain('cannot-modify-protected-property');
    }
    expect(Buffer.from(await s.getXattr('mem', '/pp', 'keep')).toString()).toBe('bytes');
    expect(await s.listXattrs('mem', '/pp')).toEqual([{ name: 'keep', size: 5 }]);
    expect(await s.listXattrs('mem', '/pp', 'stream')).toEqual([]);
    const ok = await patch('<D:set><D:prop><O:author>me</O:author></D:prop></D:set>');
    expect(ok.status).toBe(207);
    expect(ok.text).toContain('200 OK');
    expect(await s.listXattrs('mem', '/pp')).toEqual([{ name: 'keep', size: 5 }]);
    const [shown] = await propfind('/mem/pp', ALLPROP);
    expect(shown!.names).toContain('{urn:other}author');
    expect(shown!.xattrs).toEqual(new Map([['keep', Buffer.from('bytes')]]));
    await s.end();
  });
});

describe('xattr names and values in XML', () => {
  /** Parses one element with saxes (throws when it is not well-formed) and gives back name and bytes. */
  const roundTrip = (name: string, value: Uint8Array): [string, Buffer] => {
    const xml = `<r xmlns:D="DAV:">${xattrElement(name, value)}</r>`;
    let got: [string, Buffer] | undefined;
    let base64 = false;
    let text = '';
    const p = new SaxesParser({ xmlns: true, position: false });
    p.on('error', (e) => {
      throw new Error(`${e.message}: ${xml}`);
    });
    p.on('opentag', (t) => {
      if (t.uri === XATTR_NS) base64 = Object.values(t.attributes).some((a) => typeof a !== 'string' && a.local === 'encoding' && a.value === 'base64');
    });
    p.on('text', (t) => (text += t));
    p.on('closetag', (t) => {
      if (t.uri === XATTR_NS) got = [decodeXmlName(t.local!), base64 ? Buffer.from(text, 'base64') : Buffer.from(text, 'utf8')];
    });
    p.write(xml).close();
    return got!;
  };

  it('every name maps to an NCName and back, and every value to XML and back, exactly (random names and bytes)', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const alphabet = ['a', 'Z', '0', '-', '.', '_', 'x', ':', ' ', '\t', '\u0001', '\u00b7', '\u0301', 'é', '\u3000', '\uFFFE', '😀', '\u{F0000}', '<', '&', '"', 'X', '5'];
    for (let i = 0; i < 2000; i++) {
      const len = 1 + rnd(12);
      let name = '';
      for (let j = 0; j < len; j++) name += alphabet[rnd(alphabet.length)];
      const value = Buffer.alloc(rnd(20));
      for (let j = 0; j < value.length; j++) value[j] = rnd(3) === 0 ? rnd(256) : 0x20 + rnd(95);
      const [n, v] = roundTrip(name, value);
      expect(n).toBe(name);
      expect(v.equals(value)).toBe(true);
    }
  });

  it('plain names are shown as they are; text stays text, other bytes are base64', () => {
    expect(encodeXmlName('foo')).toBe('foo');
    expect(encodeXmlName('user.mime_type')).toBe('user.mime_type');
    expect(encodeXmlName('a_xb')).toBe('a_x005F_xb');
    expect(encodeXmlName('9lives')).toBe('_x0039_lives');
    expect(xattrElement('t', Buffer.from('a<b'))).toBe(`<P:t xmlns:P="${XATTR_NS}">a&lt;b</P:t>`);
    expect(xattrElement('b', Buffer.from([0, 1]))).toBe(`<P:b xmlns:P="${XATTR_NS}" encoding="base64">AAE=</P:b>`);
    expect(xattrElement('e', new Uint8Array(0))).toBe(`<P:e xmlns:P="${XATTR_NS}"/>`);
  });
});
