/**
 * Extended attributes as WebDAV dead properties (src/vfs/xattrs.ts has the mapping): the user
 * xattr NAME is the property {urn:portico:xattr}NAME; named streams are not shown.
 *
 * Decisions:
 * - An xattr name can be any Unicode string but a property name must be an XML NCName. Names that
 *   are not are escaped the way XmlConvert.EncodeName (.NET, also used by SQL Server and Excel
 *   XML) does: every character not allowed at its position becomes `_xHHHH_` (its code point in
 *   upper-case hex, at least 4 digits), and so does every `_` followed by `x`, so decoding is
 *   unambiguous and the mapping is one-to-one: `com.apple.metadata:kMDItemWhereFroms` is shown as
 *   `com.apple.metadata_x003A_kMDItemWhereFroms`, a plain `foo` as `foo`. A `prop` PROPFIND asks
 *   for the escaped name.
 * - Values are bytes. UTF-8 text made only of XML characters is shown as the element's text
 *   (escaped, CR as `&#13;` so parsers keep it); anything else (binary data, NUL-terminated
 *   strings, invalid UTF-8) as base64 with the attribute `encoding="base64"`. So PROPFIND stays
 *   well-formed whatever was set over NFS, and a client can get the exact bytes back.
 * - Read-only over WebDAV (isProtectedProperty): a PROPPATCH would store an XML element where the
 *   xattr API keeps bytes.
 */
import type { PropRow } from '../../src/store/metadata-store.ts';
import { STREAM_NS, XATTR_NS } from '../../src/vfs/xattrs.ts';
import { escapeText } from './xml.ts';

/** Namespaces whose rows belong to the xattr API, not to PROPPATCH. */
export function isXattrNamespace(ns: string): boolean {
  return ns === XATTR_NS || ns === STREAM_NS;
}

// XML 1.0 (5th edition) NameStartChar and NameChar, without ':' (Namespaces in XML: NCName).
const NAME_START = /[A-Z_a-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u02FF\u0370-\u037D\u037F-\u1FFF\u200C\u200D\u2070-\u218F\u2C00-\u2FEF\u3001-\uD7FF\uF900-\uFDCF\uFDF0-\uFFFD\u{10000}-\u{EFFFF}]/u;
const NAME_CHAR = /[-.0-9\u00B7\u0300-\u036F\u203F\u2040]/u;
const PLAIN = /^[A-Za-z][-.A-Za-z0-9]*$/;

/** The NCName an xattr name is shown as (one-to-one; see the file comment). */
export function encodeXmlName(name: string): string {
  if (PLAIN.test(name)) return name;
  let out = '';
  let first = true;
  const chars = [...name];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    const ok = c === '_' ? chars[i + 1] !== 'x' : NAME_START.test(c) || (!first && NAME_CHAR.test(c));
    out += ok ? c : `_x${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}_`;
    first = false;
  }
  return out;
}

/** The xattr name a property local name in XATTR_NS stands for (inverse of encodeXmlName). */
export function decodeXmlName(local: string): string {
  return local.replace(/_x([0-9A-F]{4,6})_/g, (_m, hex: string) => String.fromCodePoint(Number.parseInt(hex, 16)));
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// Characters XML 1.0 cannot carry at all (C0 controls but tab, LF and CR; U+FFFE, U+FFFF).
const NOT_XML_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

/** The property element an xattr is shown as (a whole self-contained element, as dead values are stored). */
export function xattrElement(name: string, value: Uint8Array): string {
  const local = encodeXmlName(name);
  const open = `<P:${local} xmlns:P="${XATTR_NS}"`;
  if (value.byteLength === 0) return `${open}/>`;
  let text: string | undefined;
  try {
    text = utf8.decode(value);
  } catch {
    text = undefined;
  }
  if (text !== undefined && !NOT_XML_CHAR.test(text)) return `${open}>${escapeText(text)}</P:${local}>`;
  const b64 = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  return `${open} encoding="base64">${b64}</P:${local}>`;
}

/**
 * The dead properties PROPFIND shows for a file's property rows: xattr rows as xattrElement (name
 * escaped), stream rows left out, every other row as it is. The same array when there is nothing
 * to change (the common case costs one scan).
 */
export function davDeadProps(dead: PropRow[]): PropRow[] {
  let i = 0;
  while (i < dead.length && !isXattrNamespace(dead[i]!.ns)) i++;
  if (i === dead.length) return dead;
  const out = dead.slice(0, i);
  for (; i < dead.length; i++) {
    const d = dead[i]!;
    if (d.ns === XATTR_NS) out.push({ ns: XATTR_NS, name: encodeXmlName(d.name), value: Buffer.from(xattrElement(d.name, d.value), 'utf8') });
    else if (d.ns !== STREAM_NS) out.push(d);
  }
  return out;
}
