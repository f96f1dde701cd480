/**
 * Share access control: the one place a permission decision is made (the session layer calls it
 * for every operation; protocols never decide).
 *
 * Model:
 * - Rights are `read`, `write` and `admin`. `admin` guards changes of ownership (chown, SMB owner
 *   SIDs) and breaking other principals' locks. Permission bits (chmod) need only `write`, as for a
 *   file's owner in POSIX: `cp -p`, `rsync -a` and `tar x` all chmod what they write.
 * - Share-level `access` entries grant rights to users/groups ('*' = any authenticated user).
 *   Without entries, every authenticated user gets read and write.
 * - Path `rules` refine that: for a path and a right, the rules on the NEAREST ancestor-or-self path
 *   that name the principal and mention the right decide. At that path the most specific rules
 *   decide: ones naming the user beat ones naming one of its groups, which beat ones naming '*'
 *   (so "deny '*', allow group finance" at one path means what it says); among equally specific
 *   rules a deny beats an allow. Paths compare segment by segment ('/fin' never covers '/finance'),
 *   and with the share's case sensitivity.
 * - Guests get read only, and only on shares with `guest: read`; a rule may still deny them.
 * - A read-only share refuses write and admin with EROFS rather than EACCES, so clients report
 *   "read-only file system" (NFS4ERR_ROFS, STATUS_MEDIA_WRITE_PROTECTED).
 *
 * Consequences the session layer relies on (docs/SECURITY.md):
 * - Below a path, a decision can differ from the path's own only at a rule path: a member whose own
 *   path carries no rule inherits its directory's decision. So a listing hides exactly the members
 *   that carry a rule denying read (memberFilter), and a recursive operation needs per-node checks
 *   only when rules lie below its root (rulesBelow) — else the check on the root covers the tree.
 * - A rule belongs to a path, not to a file: renaming or moving a directory that contains a rule's
 *   path (or the rule's path itself) would change which rule governs the files. The session refuses
 *   such moves (rulesAtOrBelow).
 */
import { VfsError } from '../vfs/errors.ts';
import { nameKey, normalizePath, splitPath } from '../vfs/path.ts';
import type { Principal } from '../auth/authenticator.ts';

export type Right = 'read' | 'write' | 'admin';

export interface AccessEntry {
  users?: string[];
  groups?: string[];
  rights: Right[];
}

export interface PathRule {
  path: string;
  users?: string[];
  groups?: string[];
  allow?: Right[];
  deny?: Right[];
}

/**
 * New symbolic links whose target leads outside the share (an absolute target, or `..` climbing
 * above the share root from the link's directory): `refuse` (default) or `keep`. Portico itself
 * never follows links, but a share's directory may also be served by other tools that do.
 */
export type SymlinkPolicy = 'refuse' | 'keep';

export interface ShareAclConfig {
  name: string;
  symlinks?: SymlinkPolicy;
  readOnly?: boolean;
  /** Why the share is read-only, for the EROFS message clients see (a backend that cannot be written). */
  readOnlyReason?: string;
  caseSensitive?: boolean;
  guest?: false | 'read';
  access?: AccessEntry[];
  rules?: PathRule[];
}

interface CompiledRule {
  users: Set<string>;
  groups: Set<string>;
  allow: Set<Right>;
  deny: Set<Right>;
}

const DEFAULT_ACCESS: AccessEntry[] = [{ users: ['*'], rights: ['read', 'write'] }];

export class ShareAcl {
  readonly share: string;
  readonly readOnly: boolean;
  private readonly readOnlyReason: string | undefined;
  private readonly caseSensitive: boolean;
  private readonly guestRead: boolean;
  private readonly access: AccessEntry[];
  /** Rules grouped by their normalised, case-keyed path. */
  private readonly rules = new Map<string, CompiledRule[]>();
  /** Case-keyed names of the children of a case-keyed directory path that carry a rule. */
  private readonly ruledChildren = new Map<string, Set<string>>();
  /** The rules' paths as configured (normalised), by case key: for messages and logs. */
  private readonly rulePaths = new Map<string, string>();
  readonly symlinks: SymlinkPolicy;

  constructor(cfg: ShareAclConfig) {
    this.share = cfg.name;
    this.readOnly = cfg.readOnly ?? false;
    this.readOnlyReason = cfg.readOnlyReason;
    this.caseSensitive = cfg.caseSensitive ?? true;
    this.guestRead = cfg.guest === 'read';
    this.access = cfg.access && cfg.access.length > 0 ? cfg.access : DEFAULT_ACCESS;
    this.symlinks = cfg.symlinks ?? 'refuse';
    for (const r of cfg.rules ?? []) {
      const path = normalizePath(r.path);
      const key = this.pathKey(path);
      this.rulePaths.set(key, path);
      if (key !== '/') {
        const cut = key.lastIndexOf('/');
        const parent = cut === 0 ? '/' : key.slice(0, cut);
        let kids = this.ruledChildren.get(parent);
        if (!kids) this.ruledChildren.set(parent, (kids = new Set()));
        kids.add(key.slice(cut + 1));
      }
      const list = this.rules.get(key) ?? [];
      list.push({
        users: new Set(r.users ?? []),
        groups: new Set(r.groups ?? []),
        allow: new Set(r.allow ?? []),
        deny: new Set(r.deny ?? []),
      });
      this.rules.set(key, list);
    }
  }

  private pathKey(path: string): string {
    return this.caseSensitive ? path : '/' + splitPath(path).map((s) => nameKey(s, false)).join('/');
  }

  private static names(set: Set<string> | string[] | undefined, p: Principal): boolean {
    if (!set) return false;
    const has = (x: string): boolean => (Array.isArray(set) ? set.includes(x) : set.has(x));
    if (has(p.user)) return true;
    if (!p.guest && has('*')) return true;
    return false;
  }

  private static matches(users: Set<string> | string[] | undefined, groups: Set<string> | string[] | undefined, p: Principal): boolean {
    if (ShareAcl.names(users, p)) return true;
    if (!groups) return false;
    for (const g of p.groups) if (Array.isArray(groups) ? groups.includes(g) : groups.has(g)) return true;
    return !p.guest && (Array.isArray(groups) ? groups.includes('*') : groups.has('*'));
  }

  private static specificity(r: CompiledRule, p: Principal): number {
    if (r.users.has(p.user)) return 2;
    for (const g of p.groups) if (r.groups.has(g)) return 1;
    if (!p.guest && (r.users.has('*') || r.groups.has('*'))) return 0;
    return -1;
  }

  /** Share-level grant, before path rules. */
  private shareGrants(p: Principal, right: Right): boolean {
    if (p.guest) return this.guestRead && right === 'read';
    return this.access.some((e) => e.rights.includes(right) && ShareAcl.matches(e.users, e.groups, p));
  }

  /** True when the principal has the right on the path (normalised share path). */
  allows(p: Principal, right: Right, path: string): boolean {
    if (this.readOnly && right !== 'read') return false;
    if (p.guest && right !== 'read') return false;
    if (this.rules.size > 0) {
      const segs = splitPath(this.pathKey(path));
      for (let n = segs.length; n >= 0; n--) {
        const rules = this.rules.get('/' + segs.slice(0, n).join('/'));
        if (!rules) continue;
        // Specificity classes: 2 = names the user, 1 = names a group of it, 0 = names '*'.
        let best = -1;
        let allow = false;
        let deny = false;
        for (const r of rules) {
          if (!r.allow.has(right) && !r.deny.has(right)) continue;
          const cls = ShareAcl.specificity(r, p);
          if (cls < 0 || cls < best) continue;
          if (cls > best) {
            best = cls;
            allow = deny = false;
          }
          if (r.deny.has(right)) deny = true;
          if (r.allow.has(right)) allow = true;
        }
        if (deny) return false;
        if (allow) return p.guest ? this.guestRead : true;
      }
    }
    return this.shareGrants(p, right);
  }

  /** Throws EROFS on a read-only share, EACCES otherwise, when the right is missing. */
  check(p: Principal, right: Right, path: string): void {
    if (this.allows(p, right, path)) return;
    if (this.readOnly && right !== 'read') {
      throw new VfsError('EROFS', this.readOnlyReason !== undefined ? `EROFS: ${this.readOnlyReason} (${path})` : undefined, { path });
    }
    throw new VfsError('EACCES', `${p.user} has no ${right} right on ${this.share}:${path}`, { path });
  }

  /**
   * For a listing of `dir` (which the principal may read): a predicate telling which member names
   * stay visible, or undefined when every member does (no rule sits directly below `dir`, the
   * common case, which costs one map lookup).
   */
  memberFilter(p: Principal, dir: string): ((name: string) => boolean) | undefined {
    if (this.ruledChildren.size === 0) return undefined;
    const dirKey = this.pathKey(dir);
    const kids = this.ruledChildren.get(dirKey);
    if (!kids) return undefined;
    const prefix = dirKey === '/' ? '/' : dirKey + '/';
    const hidden = new Set<string>();
    for (const k of kids) if (!this.allows(p, 'read', prefix + k)) hidden.add(k);
    if (hidden.size === 0) return undefined;
    // Backends may list names in NFD (macOS clients); rule paths are NFC, like every checked path.
    return (name) => !hidden.has(this.caseSensitive ? name.normalize('NFC') : nameKey(name, false));
  }

  /** Whether two normalised paths name the same place on this share (case-folded where it is). */
  samePath(a: string, b: string): boolean {
    return a === b || this.pathKey(a) === this.pathKey(b);
  }

  /** Configured rule paths strictly below `path` (normalised share path). */
  rulesBelow(path: string): string[] {
    return this.rulesUnder(path, false);
  }

  /** Configured rule paths at `path` or below it. */
  rulesAtOrBelow(path: string): string[] {
    return this.rulesUnder(path, true);
  }

  private rulesUnder(path: string, self: boolean): string[] {
    if (this.rulePaths.size === 0) return [];
    const key = this.pathKey(path);
    const prefix = key === '/' ? '/' : key + '/';
    const out: string[] = [];
    for (const [k, original] of this.rulePaths) {
      if ((self && k === key) || (k !== key && k.startsWith(prefix))) out.push(original);
    }
    return out;
  }

  /** Whether the principal may see the share at all (listing shares, mounting). */
  visibleTo(p: Principal): boolean {
    if (p.guest) return this.guestRead;
    if (this.shareGrants(p, 'read') || this.shareGrants(p, 'write') || this.shareGrants(p, 'admin')) return true;
    // A principal granted access only by a path rule still needs to reach the root to walk there.
    for (const rules of this.rules.values()) {
      for (const r of rules) if (ShareAcl.matches(r.users, r.groups, p) && r.allow.size > 0) return true;
    }
    return false;
  }
}
