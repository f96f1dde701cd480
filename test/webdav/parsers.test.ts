/**
 * The WebDAV header and body parsers on their own: If header grammar and evaluation, URL segment
 * decoding, Destination, Timeout, XML limits and serialisation, the error table.
 */
import { describe, expect, it } from 'vitest';
import { VfsError } from '../../src/vfs/errors.ts';
import { HttpError, statusFor } from '../../protocols/webdav/errors.ts';
import { evaluateIf, parseIfHeader } from '../../protocols/webdav/if-header.ts';
import { decodeSegment, hrefOf, parseDestination, parseRawPath, parseRequestTarget } from '../../protocols/webdav/paths.ts';
import { parseTimeout } from '../../protocols/webdav/methods/lock.ts';
import { parseXml, serializeElement } from '../../protocols/webdav/xml.ts';

const status = (f: () => unknown): number => {
  try {
    f();
  } catch (e) {
    return e instanceof HttpError ? e.status : -1;
  }
  return 0;
};

describe('If header', () => {
  it('parses untagged and tagged lists, Not, ETags', () => {
    expect(parseIfHeader('(<opaquelocktoken:a> ["e1"]) (Not <DAV:no-lock>)')).toEqual([
      { conditions: [{ not: false, token: 'opaquelocktoken:a' }, { not: false, etag: '"e1"' }] },
      { conditions: [{ not: true, token: 'DAV:no-lock' }] },
    ]);
    expect(parseIfHeader('<http://h/a> (<t1>) (["x"]) </b> (NOT [W/"y"])')).toEqual([
      { resource: 'http://h/a', conditions: [{ not: false, token: 't1' }] },
      { resource: 'http://h/a', conditions: [{ not: false, etag: '"x"' }] },
      { resource: '/b', conditions: [{ not: true, etag: 'W/"y"' }] },
    ]);
    expect(parseIfHeader('(["with ] bracket"])')[0]!.conditions[0]!.etag).toBe('"with ] bracket"');
  });

  it('refuses malformed headers', () => {
    for (const bad of ['', '()', '(<a>', '<http://h/a>', '(<a>) <http://h/b> (<c>)', '(Not)', '(<a> foo)', '([e1])', 'x', `${'(<a>) '.repeat(65)}`]) {
      expect(status(() => parseIfHeader(bad)), bad).toBe(400);
    }
  });

  it('evaluates lists with OR, conditions with AND, and submits only tokens of true lists', async () => {
    const state = { etag: '"e"', lockTokens: new Set(['t1']) };
    const ev = (h: string) => evaluateIf(parseIfHeader(h), async () => state);
    expect(await ev('(<t1>)')).toEqual({ ok: true, tokens: new Set(['t1']) });
    expect((await ev('(<t2>)')).ok).toBe(false);
    expect(await ev('(<t2>) (Not <DAV:no-lock>)')).toEqual({ ok: true, tokens: new Set() });
    expect((await ev('(<t1> ["x"])')).ok).toBe(false);
    expect((await ev('(<t1> ["e"])')).ok).toBe(true);
    expect((await ev('(Not <t1>)')).ok).toBe(false);
    const missing = await evaluateIf(parseIfHeader('(Not <DAV:no-lock>)'), async () => undefined);
    expect(missing.ok).toBe(true);
  });
});

describe('URL paths', () => {
  it('decodes each segment exactly once into valid UTF-8', () => {
    expect(decodeSegment('a%20b')).toBe('a b');
    expect(decodeSegment('%E2%82%AC')).toBe('€');
    expect(decodeSegment('%2525')).toBe('%25');
    expect(decodeSegment('%2e%2e')).toBe('..');
    for (const bad of ['%2f', '%2F', '%5c', 'a\\b', '%c0%ae', '%e0%80%ae', '%ff', '%8', '%zz', '%ed%a0%80']) {
      expect(status(() => decodeSegment(bad)), bad).toBe(400);
    }
  });

  it('splits share and path, refuses fragments and long URLs', () => {
    expect(parseRequestTarget('/s/a%20b/c/?q=1')).toEqual({ share: 's', path: '/a b/c', trailingSlash: true });
    expect(parseRequestTarget('http://host:1/s/x')).toEqual({ share: 's', path: '/x', trailingSlash: false });
    expect(parseRequestTarget('/')).toEqual({ share: '', path: '/', trailingSlash: true });
    expect(status(() => parseRequestTarget('/s/x#f'))).toBe(400);
    expect(status(() => parseRequestTarget(`/s/${'a'.repeat(9000)}`))).toBe(414);
    expect(hrefOf('s', '/a b/€', false)).toBe('/s/a%20b/%E2%82%AC');
  });

  it('a plain path (nothing to decode) parses as parseRawPath would: every shape of slashes, non-ASCII, the length bound', () => {
    for (const url of ['/s', '/s/', '//s//a///b//', '/s/a/b', '/s/a/b/', '/s/é€/x', '/s/.', '/s/..', '/s/a b']) {
      expect(parseRequestTarget(url)).toEqual(parseRawPath(url));
    }
    // The length bound holds on the plain path too: 8 KiB of bytes, not of UTF-16 units.
    expect(status(() => parseRequestTarget(`/s/${'é'.repeat(4100)}`))).toBe(414);
    expect(status(() => parseRequestTarget(`/s/${'é'.repeat(4000)}`))).toBe(0);
    // A backslash still needs the full parse (400), as does a percent-escape (decoded).
    expect(status(() => parseRequestTarget('/s/a\\b'))).toBe(400);
    expect(parseRequestTarget('/s/%61')).toEqual({ share: 's', path: '/a', trailingSlash: false });
  });

  it('parses Destination: same authority only, paths as they are', () => {
    expect(parseDestination('http://h:8080/s/a%2520', 'h:8080')).toEqual({ share: 's', path: '/a%20', trailingSlash: false });
    expect(parseDestination('http://H/s/a', 'h:80')).toEqual({ share: 's', path: '/a', trailingSlash: false });
    expect(parseDestination('/s/b/', 'x')).toEqual({ share: 's', path: '/b', trailingSlash: true });
    expect(parseDestination('http://other/s/a', 'h')).toBe('foreign');
    expect(parseDestination('ftp://h/s/a', 'h')).toBe('foreign');
    expect(status(() => parseDestination('s/a', 'h'))).toBe(400);
    expect(status(() => parseDestination('http://h/s/%2e%2e%2fx', 'h'))).toBe(400);
  });
});

describe('Timeout', () => {
  it('takes the first usable value, caps it, refuses garbage', () => {
    expect(parseTimeout(undefined, 600_000, 3_600_000)).toBe(600_000);
    expect(parseTimeout('Second-100', 1, 3_600_000)).toBe(100_000);
    expect(parseTimeout('Infinite, Second-5', 1, 3_600_000)).toBe(3_600_000);
    expect(parseTimeout('Second-99999999999', 1, 3_600_000)).toBe(3_600_000);
    expect(status(() => parseTimeout('Seconds-5', 1, 10))).toBe(400);
    expect(status(() => parseTimeout('', 1, 10))).toBe(400);
  });
});

describe('XML', () => {
  it('parses namespaces and refuses DOCTYPE, unknown entities, invalid prefixes', () => {
    const el = parseXml(Buffer.from('<a:x xmlns:a="urn:a" xml:lang="en">t<b/>&amp;</a:x>'))!;
    expect(el.ns).toBe('urn:a');
    expect(el.attrs).toEqual([{ ns: 'http://www.w3.org/XML/1998/namespace', local: 'lang', value: 'en' }]);
    expect(serializeElement(el)).toBe('<ns0:x xmlns:ns0="urn:a" xml:lang="en">t<b/>&amp;</ns0:x>');
    expect(parseXml(Buffer.from('  \n'))).toBeUndefined();
    for (const bad of ['<!DOCTYPE x><x/>', '<x>&e;</x>', '<x xmlns:p=""><p:y/></x>', '<x>', '<x/><y/>', '\xff']) {
      expect(status(() => parseXml(Buffer.from(bad, 'latin1'))), bad).toBe(400);
    }
    expect(status(() => parseXml(Buffer.from('<x>' + '<y/>'.repeat(60_000) + '</x>')))).toBe(413);
  });
});

describe('error table', () => {
  it('maps VFS codes by method where RFC 4918 says so', () => {
    const e = (c: ConstructorParameters<typeof VfsError>[0]) => new VfsError(c);
    expect(statusFor(e('ENOENT'))).toBe(404);
    expect(statusFor(e('EEXIST'), 'mkcol')).toBe(405);
    expect(statusFor(e('EEXIST'), 'overwrite')).toBe(412);
    expect(statusFor(e('ENOENT'), 'put')).toBe(409);
    expect(statusFor(e('EACCES'))).toBe(403);
    expect(statusFor(e('EROFS'))).toBe(403);
    expect(statusFor(e('ELOCKED'))).toBe(423);
    expect(statusFor(e('ESHARING'))).toBe(423);
    expect(statusFor(e('ENOSPC'))).toBe(507);
    expect(statusFor(e('EDQUOT'))).toBe(507);
    expect(statusFor(e('ENOTLOCKED'), 'unlock')).toBe(409);
    expect(statusFor(e('ETIMEDOUT'))).toBe(504);
    expect(statusFor(e('ENOTSUP'))).toBe(501);
    expect(statusFor(e('ETHROTTLED'))).toBe(429);
    expect(statusFor(new Error('bug'))).toBe(500);
  });
});
