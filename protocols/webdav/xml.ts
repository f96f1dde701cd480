/**
 * XML for WebDAV: a bounded, namespace-aware parser for request bodies and the escaping and
 * serialisation used to write responses.
 *
 * Security decisions:
 * - saxes is non-validating and never reads external resources; on top of that any DOCTYPE is
 *   refused outright, so no entity can ever be declared (XXE, "billion laughs"). saxes knows only the
 *   five predefined entities; any other entity reference is a well-formedness error. Both give 400.
 * - Bodies are bounded in bytes (while reading, see server.ts), elements and nesting depth.
 * - `xmlns:p=""` is an error in XML 1.0 namespaces (litmus propfind_invalid2): saxes reports it.
 */
import { SaxesParser } from 'saxes';
import { HttpError } from './errors.ts';

export const DAV_NS = 'DAV:';
export const MS_NS = 'urn:schemas-microsoft-com:';
const XML_NS = 'http://www.w3.org/XML/1998/namespace';
const XMLNS_NS = 'http://www.w3.org/2000/xmlns/';

export interface XmlAttr {
  ns: string;
  local: string;
  value: string;
}

export interface XmlElement {
  ns: string;
  local: string;
  attrs: XmlAttr[];
  children: XmlNode[];
}

export type XmlNode = XmlElement | string;

export interface XmlLimits {
  maxBytes: number;
  maxElements: number;
  maxDepth: number;
}

export const DEFAULT_XML_LIMITS: XmlLimits = { maxBytes: 1024 * 1024, maxElements: 50_000, maxDepth: 64 };

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * Called for each element as it is opened, with its ancestors (root first), before its content is
 * parsed: a method can count what it bounds and throw (an HttpError) to stop parsing there.
 */
export type XmlOpenHook = (el: XmlElement, ancestors: readonly XmlElement[]) => void;

/** Parses a request body; undefined for an empty (or whitespace-only) body. Throws HttpError 400/413. */
export function parseXml(body: Buffer, limits: XmlLimits = DEFAULT_XML_LIMITS, onOpen?: XmlOpenHook): XmlElement | undefined {
  if (body.length > limits.maxBytes) throw new HttpError(413, 'XML body too large');
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new HttpError(400, 'XML body is not valid UTF-8');
  }
  if (text.trim() === '') return undefined;
  const parser = new SaxesParser({ xmlns: true, position: false });
  let root: XmlElement | undefined;
  const stack: XmlElement[] = [];
  let elements = 0;
  let failure: string | undefined;
  parser.on('error', (e) => {
    failure ??= e.message;
    throw new HttpError(400, `malformed XML: ${e.message}`);
  });
  parser.on('doctype', () => {
    throw new HttpError(400, 'DOCTYPE is not allowed in request bodies');
  });
  parser.on('opentag', (tag) => {
    if (++elements > limits.maxElements) throw new HttpError(413, 'too many XML elements');
    if (stack.length >= limits.maxDepth) throw new HttpError(400, 'XML nested too deeply');
    const attrs: XmlAttr[] = [];
    for (const a of Object.values(tag.attributes)) {
      if (a.uri === XMLNS_NS || a.name === 'xmlns') continue;
      attrs.push({ ns: a.uri, local: a.local, value: a.value });
    }
    const el: XmlElement = { ns: tag.uri, local: tag.local, attrs, children: [] };
    const parent = stack.at(-1);
    if (parent) parent.children.push(el);
    else root = el;
    onOpen?.(el, stack);
    stack.push(el);
  });
  parser.on('closetag', () => {
    stack.pop();
  });
  const addText = (t: string): void => {
    const parent = stack.at(-1);
    if (!parent) return;
    const last = parent.children.at(-1);
    if (typeof last === 'string') parent.children[parent.children.length - 1] = last + t;
    else parent.children.push(t);
  };
  parser.on('text', addText);
  parser.on('cdata', addText);
  try {
    parser.write(text).close();
  } catch (e) {
    if (e instanceof HttpError) throw e;
    throw new HttpError(400, `malformed XML: ${failure ?? (e as Error).message}`);
  }
  if (!root) throw new HttpError(400, 'XML body has no root element');
  return root;
}

export function childElements(el: XmlElement): XmlElement[] {
  return el.children.filter((c): c is XmlElement => typeof c !== 'string');
}

export function findChild(el: XmlElement, ns: string, local: string): XmlElement | undefined {
  return childElements(el).find((c) => c.ns === ns && c.local === local);
}

export function isDav(el: XmlElement, local: string): boolean {
  return el.ns === DAV_NS && el.local === local;
}

export function textOf(el: XmlElement): string {
  let out = '';
  for (const c of el.children) out += typeof c === 'string' ? c : textOf(c);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Writing

const NEEDS_ESCAPE = /[&<>\r]/;

export function escapeText(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return s;
  return s.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;')).replace(/\r/g, '&#13;');
}

export function escapeAttr(s: string): string {
  return s.replace(/[&<>"'\t\n\r]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Open tag for a property name in any namespace, declaring the namespace locally when not DAV:. */
export function propTag(ns: string, local: string): { open: string; close: string; empty: string } {
  if (ns === DAV_NS) return { open: `<D:${local}>`, close: `</D:${local}>`, empty: `<D:${local}/>` };
  if (ns === MS_NS) return { open: `<Z:${local}>`, close: `</Z:${local}>`, empty: `<Z:${local}/>` };
  if (ns === '') return { open: `<${local} xmlns="">`, close: `</${local}>`, empty: `<${local} xmlns=""/>` };
  const decl = ` xmlns:P="${escapeAttr(ns)}"`;
  return { open: `<P:${local}${decl}>`, close: `</P:${local}>`, empty: `<P:${local}${decl}/>` };
}

/**
 * Serialises an element as a self-contained fragment: every namespace it or its descendants use is
 * declared on the fragment's root with generated prefixes, so it can be stored and later embedded
 * anywhere (dead property values, lock owners). Elements in no namespace get no prefix; the
 * fragment never declares a default namespace, so that stays true wherever it is embedded, except
 * that an unprefixed root is given `xmlns=""` in case the context has a default namespace.
 */
export function serializeElement(el: XmlElement): string {
  const prefixes = new Map<string, string>();
  let n = 0;
  const add = (ns: string): void => {
    if (ns !== '' && ns !== XML_NS && !prefixes.has(ns)) prefixes.set(ns, ns === DAV_NS ? 'D' : `ns${n++}`);
  };
  const collect = (e: XmlElement): void => {
    add(e.ns);
    for (const a of e.attrs) add(a.ns);
    for (const c of e.children) if (typeof c !== 'string') collect(c);
  };
  collect(el);
  const name = (ns: string, local: string): string => (ns === '' ? local : ns === XML_NS ? `xml:${local}` : `${prefixes.get(ns)}:${local}`);
  const write = (e: XmlElement, root: boolean): string => {
    let s = `<${name(e.ns, e.local)}`;
    if (root) {
      for (const [ns, p] of prefixes) s += ` xmlns:${p}="${escapeAttr(ns)}"`;
      if (e.ns === '') s += ' xmlns=""';
    }
    for (const a of e.attrs) s += ` ${name(a.ns, a.local)}="${escapeAttr(a.value)}"`;
    if (e.children.length === 0) return `${s}/>`;
    s += '>';
    for (const c of e.children) s += typeof c === 'string' ? escapeText(c) : write(c, false);
    return `${s}</${name(e.ns, e.local)}>`;
  };
  return write(el, true);
}

/** Serialises the children of an element (owner content), each child element self-contained. */
export function serializeChildren(el: XmlElement): string {
  let s = '';
  for (const c of el.children) s += typeof c === 'string' ? escapeText(c) : serializeElement(c);
  return s;
}
