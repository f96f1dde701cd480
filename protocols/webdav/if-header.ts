/**
 * The WebDAV `If` header (RFC 4918 §10.4): parser and evaluator.
 *
 *   If = ( 1*No-tag-list | 1*Tagged-list )
 *   Tagged-list = Resource-Tag 1*List        List = "(" 1*Condition ")"
 *   Condition = ["Not"] ( State-token | "[" entity-tag "]" )
 *
 * Evaluation: a list is true when all its conditions are true; the header is true when at least one
 * list is true (lists are OR'ed, conditions AND'ed). Untagged lists apply to the request URI, tagged
 * ones to their tag's resource. A state token matches when it is the token of a lock that covers the
 * resource (its own or a depth-infinity lock on an ancestor); `DAV:no-lock` never matches. ETags
 * compare exactly (ours are strong). When the header is false the request fails with 412.
 *
 * Submitted tokens (decision): the lock tokens named, without `Not`, in lists that evaluated true.
 * They go into `session.lockTokens`, so the VFS lets changes through the locks they name. A token in
 * a failed list is not submitted: `(<bad-token>) (Not <DAV:no-lock>)` is true yet submits nothing, so
 * the locked resource still answers 423 (litmus cond_put_corrupt_token).
 *
 * Bounds: at most 64 lists of at most 64 conditions; anything malformed is a 400.
 */
import { HttpError } from './errors.ts';

export interface IfCondition {
  not: boolean;
  /** A state token (Coded-URL content), e.g. `opaquelocktoken:…` or `DAV:no-lock`. */
  token?: string;
  /** An entity tag including its quotes (and `W/` when weak). */
  etag?: string;
}

export interface IfList {
  /** Resource tag (absolute URL or path, raw) for tagged lists; undefined = the request URI. */
  resource?: string;
  conditions: IfCondition[];
}

const MAX_LISTS = 64;
const MAX_CONDITIONS = 64;

export function parseIfHeader(value: string): IfList[] {
  const s = value;
  let i = 0;
  const lists: IfList[] = [];
  let tagged: boolean | undefined;
  let currentTag: string | undefined;
  let tagHasList = true;
  const bad = (why: string): HttpError => new HttpError(400, `malformed If header: ${why}`);
  const ws = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\r' || s[i] === '\n')) i++;
  };
  const codedUrl = (): string => {
    // at '<'
    const end = s.indexOf('>', i + 1);
    if (end < 0) throw bad('unterminated <…>');
    const url = s.slice(i + 1, end);
    if (url === '' || /[\s<]/.test(url)) throw bad('bad URL in <…>');
    i = end + 1;
    return url;
  };
  for (;;) {
    ws();
    if (i >= s.length) break;
    const c = s[i];
    if (c === '<') {
      if (tagged === false) throw bad('resource tag after untagged list');
      if (!tagHasList) throw bad('resource tag without a list');
      tagged = true;
      currentTag = codedUrl();
      tagHasList = false;
      continue;
    }
    if (c !== '(') throw bad(`unexpected '${c}'`);
    if (tagged === undefined) tagged = false;
    i++;
    const conditions: IfCondition[] = [];
    for (;;) {
      ws();
      if (i >= s.length) throw bad('unterminated list');
      if (s[i] === ')') {
        i++;
        break;
      }
      let not = false;
      if (s.slice(i, i + 3).toLowerCase() === 'not') {
        not = true;
        i += 3;
        ws();
      }
      if (s[i] === '<') {
        conditions.push({ not, token: codedUrl() });
      } else if (s[i] === '[') {
        const end = findEtagEnd(s, i + 1);
        if (end < 0) throw bad('unterminated [etag]');
        const etag = s.slice(i + 1, end).trim();
        if (!/^(W\/)?"[^"]*"$/.test(etag)) throw bad('bad entity tag');
        conditions.push({ not, etag });
        i = end + 1;
      } else {
        throw bad('expected <state-token> or [etag]');
      }
      if (conditions.length > MAX_CONDITIONS) throw bad('too many conditions');
    }
    if (conditions.length === 0) throw bad('empty list');
    lists.push(currentTag === undefined ? { conditions } : { resource: currentTag, conditions });
    tagHasList = true;
    if (lists.length > MAX_LISTS) throw bad('too many lists');
  }
  if (lists.length === 0) throw bad('no list');
  if (!tagHasList) throw bad('resource tag without a list');
  return lists;
}

/** Index of the ']' closing an entity tag that starts at `from` (skipping the quoted string). */
function findEtagEnd(s: string, from: number): number {
  let i = from;
  while (i < s.length && s[i] !== '"') {
    if (s[i] === ']') return i;
    i++;
  }
  if (i >= s.length) return -1;
  const close = s.indexOf('"', i + 1);
  if (close < 0) return -1;
  return s.indexOf(']', close + 1);
}

/** What the evaluator needs to know about a resource. `undefined` = it does not exist / is not ours. */
export interface IfResourceState {
  etag: string | undefined;
  /** Tokens of the locks covering the resource (own and inherited depth-infinity locks). */
  lockTokens: ReadonlySet<string>;
}

export interface IfResult {
  ok: boolean;
  /** Tokens submitted (see the module comment). */
  tokens: Set<string>;
}

/**
 * Evaluates parsed lists. `resolve(undefined)` is the request URI; `resolve(tag)` a tagged resource.
 * Each distinct resource is resolved once.
 */
export async function evaluateIf(lists: IfList[], resolve: (resource: string | undefined) => Promise<IfResourceState | undefined>): Promise<IfResult> {
  const cache = new Map<string, IfResourceState | undefined>();
  const stateOf = async (r: string | undefined): Promise<IfResourceState | undefined> => {
    const key = r ?? '';
    if (!cache.has(key)) cache.set(key, await resolve(r));
    return cache.get(key);
  };
  const tokens = new Set<string>();
  let ok = false;
  for (const list of lists) {
    const st = await stateOf(list.resource);
    let listOk = true;
    for (const c of list.conditions) {
      let match: boolean;
      if (c.token !== undefined) match = st !== undefined && st.lockTokens.has(c.token);
      else match = st !== undefined && st.etag !== undefined && etagEquals(st.etag, c.etag!);
      if (match === c.not) {
        listOk = false;
        break;
      }
    }
    if (!listOk) continue;
    ok = true;
    for (const c of list.conditions) if (!c.not && c.token !== undefined) tokens.add(c.token);
  }
  return { ok, tokens };
}

function etagEquals(a: string, b: string): boolean {
  return a === b;
}

/** Every positive state token named anywhere in the header (for UNLOCK-less refresh lookups). */
export function allTokens(lists: IfList[]): string[] {
  const out: string[] = [];
  for (const l of lists) for (const c of l.conditions) if (!c.not && c.token !== undefined) out.push(c.token);
  return out;
}
