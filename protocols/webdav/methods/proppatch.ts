/**
 * PROPPATCH (RFC 4918 §9.2): atomic per request — every instruction applies, in document order, or
 * none does; on any failure the failed properties get their status and all others 424 Failed
 * Dependency.
 *
 * - Dead properties go to the VFS property store in one `session.setProps` call (one transaction).
 * - The Windows WebClient's Win32CreationTime, Win32LastAccessTime, Win32LastModifiedTime
 *   (RFC 1123 dates) and Win32FileAttributes (hex) in `urn:schemas-microsoft-com:` are applied to
 *   the file's real birth/access/modification times and Windows attributes with one
 *   `session.setattr`; if the dead-property part then fails, the attributes are put back.
 * - Other computed properties are protected: 403 with cannot-modify-protected-property.
 *
 * Work bounds (security issue 15 §4: a PROPPATCH setting 40,000 properties, a 430 KB body, held the
 * event loop ~690 ms being parsed, stored in one transaction and answered in one piece):
 * - At most `maxProppatchProperties` properties set or removed per request, counted while the body
 *   is parsed: the parser stops at the first one over the limit (413 naming the key) instead of
 *   building the whole tree. Properties are counted, not elements: a value may hold markup.
 * - A dead property value (the element as stored) over `maxPropertyValueBytes` refuses the request
 *   with 413 naming the key. Both are checked before anything is applied, so nothing is stored.
 * 413 as for PROPFIND's name limit: request content the server will not process in one go, which
 * will fail again unchanged (the client can split it; a 507 would read as a server failure).
 */
import type { PropChange } from '../../../src/store/metadata-store.ts';
import type { SetAttr } from '../../../src/vfs/types.ts';
import type { DavContext } from '../context.ts';
import { HttpError, statusLine } from '../errors.ts';
import { checkPreconditions, hasPreconditions } from '../conditional.ts';
import { MULTISTATUS_CLOSE, MULTISTATUS_OPEN, isProtectedProperty, isWin32Property } from '../properties.ts';
import { DAV_NS, childElements, escapeText, isDav, parseXml, propTag, serializeElement, textOf, type XmlElement } from '../xml.ts';

interface Op {
  set: boolean;
  el: XmlElement;
  status: number;
  condition?: string;
  /** A dead property's stored value (set), serialised while the request is checked. */
  value?: Buffer;
}

const WIN32_FIELD: Record<string, keyof SetAttr> = {
  Win32CreationTime: 'birthtimeNs',
  Win32LastAccessTime: 'atimeNs',
  Win32LastModifiedTime: 'mtimeNs',
  Win32FileAttributes: 'winAttributes',
};

function win32Value(local: string, text: string): bigint | number | undefined {
  const t = text.trim();
  if (local === 'Win32FileAttributes') return /^[0-9A-Fa-f]{1,8}$/.test(t) ? parseInt(t, 16) : undefined;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? undefined : BigInt(ms) * 1_000_000n;
}

/**
 * Reads and parses a PROPPATCH body, counting the properties it sets or removes as they are opened
 * (propertyupdate > set|remove > prop > property) and stopping at the first one over
 * maxProppatchProperties with 413.
 */
function readPropertyUpdate(ctx: DavContext, body: Buffer): XmlElement | undefined {
  const max = ctx.settings.maxProppatchProperties;
  let properties = 0;
  return parseXml(body, ctx.settings.xmlLimits, (_el, up) => {
    if (up.length !== 3 || !isDav(up[0]!, 'propertyupdate') || !isDav(up[2]!, 'prop')) return;
    const instr = up[1]!;
    if (instr.ns !== DAV_NS || (instr.local !== 'set' && instr.local !== 'remove')) return;
    if (++properties > max) {
      throw new HttpError(
        413,
        `PROPPATCH sets or removes more than ${max} properties; at most ${max} are accepted per request (protocols.webdav.maxProppatchProperties): send them in several requests`,
      );
    }
  });
}

export async function proppatch(ctx: DavContext): Promise<void> {
  const root = readPropertyUpdate(ctx, await ctx.body());
  if (!root || !isDav(root, 'propertyupdate')) throw new HttpError(400, 'PROPPATCH body must be a DAV:propertyupdate element');

  const ops: Op[] = [];
  for (const instr of childElements(root)) {
    if (instr.ns !== DAV_NS || (instr.local !== 'set' && instr.local !== 'remove')) continue;
    for (const prop of childElements(instr)) {
      if (!isDav(prop, 'prop')) continue;
      for (const el of childElements(prop)) ops.push({ set: instr.local === 'set', el, status: 200 });
    }
  }
  if (ops.length === 0) throw new HttpError(400, 'PROPPATCH without any property');
  // Values are checked before anything is looked up or applied: a refusal stores nothing.
  const maxValue = ctx.settings.maxPropertyValueBytes;
  for (const op of ops) {
    if (!op.set || isWin32Property(op.el.ns, op.el.local) || isProtectedProperty(op.el.ns, op.el.local)) continue;
    op.value = Buffer.from(serializeElement(op.el), 'utf8');
    if (op.value.length > maxValue) {
      throw new HttpError(
        413,
        `PROPPATCH value of {${op.el.ns}}${op.el.local} is ${op.value.length} bytes; property values of at most ${maxValue} bytes are stored (protocols.webdav.maxPropertyValueBytes)`,
      );
    }
  }
  const attr = await ctx.session.getattr(ctx.share, ctx.path);
  if (hasPreconditions(ctx) && checkPreconditions(ctx, attr) !== undefined) throw new HttpError(412, 'precondition failed');

  const changes: PropChange[] = [];
  const set: SetAttr = {};
  let failed = false;
  for (const op of ops) {
    const { ns, local } = op.el;
    if (isWin32Property(ns, local)) {
      if (!op.set) continue;
      const v = win32Value(local, textOf(op.el));
      if (v === undefined) {
        op.status = 409;
        failed = true;
        continue;
      }
      (set as Record<string, bigint | number>)[WIN32_FIELD[local]!] = v;
    } else if (isProtectedProperty(ns, local)) {
      op.status = 403;
      op.condition = 'cannot-modify-protected-property';
      failed = true;
    } else {
      changes.push({ ns, name: local, value: op.set ? op.value! : null });
    }
  }
  if (failed) {
    for (const op of ops) if (op.status === 200) op.status = 424;
  } else {
    const win32 = Object.keys(set) as (keyof SetAttr)[];
    if (win32.length > 0) await ctx.session.setattr(ctx.share, ctx.path, set);
    try {
      if (changes.length > 0) await ctx.session.setProps(ctx.share, ctx.path, changes);
    } catch (e) {
      if (win32.length > 0) {
        const back: SetAttr = {};
        for (const k of win32) (back as Record<string, unknown>)[k] = attr[k as keyof typeof attr];
        await ctx.session.setattr(ctx.share, ctx.path, back).catch((err: unknown) => ctx.log.warn({ err }, 'webdav: PROPPATCH rollback failed'));
      }
      throw e;
    }
  }
  ctx.send(207, { 'Content-Type': 'application/xml; charset=utf-8' }, render(ctx.href(ctx.path, attr.type === 'dir'), ops));
}

function render(href: string, ops: Op[]): string {
  const groups = new Map<string, Op[]>();
  for (const op of ops) {
    const k = `${op.status} ${op.condition ?? ''}`;
    const g = groups.get(k) ?? [];
    g.push(op);
    groups.set(k, g);
  }
  let out = `${MULTISTATUS_OPEN}<D:response><D:href>${escapeText(href)}</D:href>`;
  for (const g of groups.values()) {
    const first = g[0]!;
    out += `<D:propstat><D:prop>${g.map((o) => propTag(o.el.ns, o.el.local).empty).join('')}</D:prop><D:status>${statusLine(first.status)}</D:status>`;
    if (first.condition) out += `<D:error><D:${first.condition}/></D:error>`;
    out += '</D:propstat>';
  }
  return `${out}</D:response>\n${MULTISTATUS_CLOSE}`;
}
