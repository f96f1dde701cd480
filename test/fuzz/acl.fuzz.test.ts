/**
 * Model-based test of ShareAcl: random rule sets and principals, with `allows()` compared against a
 * reference written here from the documented semantics (header of src/acl/acl.ts), not from the code:
 * - the nearest ancestor-or-self path holding a rule that names the principal and mentions the right
 *   decides; there, rules naming the user beat rules naming one of its groups beat rules naming '*';
 *   among equally specific rules deny beats allow;
 * - otherwise share-level `access` decides (none = every authenticated user reads and writes);
 * - a read-only share refuses write and admin; guests only ever read, only with `guest: 'read'`, and
 *   '*' never names a guest;
 * - paths compare segment by segment, case-insensitively when the share is.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { runs } from '../setup/fuzz-seed.ts';
import { ShareAcl, type AccessEntry, type PathRule, type Right, type ShareAclConfig } from '../../src/acl/acl.ts';
import { VfsError } from '../../src/vfs/errors.ts';
import { normalizePath } from '../../src/vfs/path.ts';
import type { Principal } from '../../src/auth/authenticator.ts';

const RIGHTS: Right[] = ['read', 'write', 'admin'];
const RUNS = 300;

// ---------------------------------------------------------------------------------------------------
// Reference model

const segmentsOf = (path: string): string[] => path.split('/').filter((s) => s !== '');

function refAllows(cfg: ShareAclConfig, p: Principal, right: Right, path: string): boolean {
  if (cfg.readOnly === true && right !== 'read') return false;
  if (p.guest && (right !== 'read' || cfg.guest !== 'read')) return false;
  // The alphabets below are ASCII, so toLowerCase is a complete case fold for them.
  const fold = (s: string): string => (cfg.caseSensitive === false ? s.toLowerCase() : s);
  const target = segmentsOf(path).map(fold);

  const namesStar = (list: string[] | undefined): boolean => !p.guest && (list ?? []).includes('*');
  const specificity = (r: PathRule): number => {
    if ((r.users ?? []).includes(p.user)) return 2;
    if ((r.groups ?? []).some((g) => p.groups.includes(g))) return 1;
    if (namesStar(r.users) || namesStar(r.groups)) return 0;
    return -1;
  };

  for (let depth = target.length; depth >= 0; depth--) {
    const here = target.slice(0, depth);
    const candidates = (cfg.rules ?? [])
      .filter((r) => {
        const segs = segmentsOf(r.path).map(fold);
        return segs.length === here.length && segs.every((s, i) => s === here[i]);
      })
      .filter((r) => (r.allow ?? []).includes(right) || (r.deny ?? []).includes(right))
      .map((r) => ({ r, s: specificity(r) }))
      .filter((x) => x.s >= 0);
    if (candidates.length === 0) continue;
    const top = Math.max(...candidates.map((x) => x.s));
    const winners = candidates.filter((x) => x.s === top);
    return !winners.some((x) => (x.r.deny ?? []).includes(right));
  }

  if (p.guest) return true; // read, on a guest-read share (checked above)
  const access: AccessEntry[] = cfg.access && cfg.access.length > 0 ? cfg.access : [{ users: ['*'], rights: ['read', 'write'] }];
  return access.some(
    (e) =>
      e.rights.includes(right) &&
      ((e.users ?? []).includes(p.user) || namesStar(e.users) || (e.groups ?? []).some((g) => p.groups.includes(g)) || namesStar(e.groups)),
  );
}

// ---------------------------------------------------------------------------------------------------
// Arbitraries

/** Prefix-related and case-related names, so string-prefix and case bugs have something to hit. */
const SEGMENTS = ['a', 'A', 'b', 'fin', 'Fin', 'finance', 'FINANCE', 'fina'];
const USERS = ['alice', 'bob', 'carol'];
const GROUPS = ['g1', 'g2', 'g3'];

const segs = fc.array(fc.constantFrom(...SEGMENTS), { maxLength: 3 });
/** Rule paths as an operator writes them: leading, trailing and doubled slashes are all the same rule. */
const rulePath = fc
  .tuple(segs, fc.constantFrom('/', '//'), fc.constantFrom('', '/'))
  .map(([s, lead, trail]) => (s.length === 0 ? lead : lead + s.join('/') + trail));
const queryPath = fc.array(fc.constantFrom(...SEGMENTS), { maxLength: 4 }).map((s) => '/' + s.join('/'));

const rightsSubset = fc.subarray(RIGHTS);
const optional = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });

const pathRule: fc.Arbitrary<PathRule> = fc
  .record({
    path: rulePath,
    users: optional(fc.subarray([...USERS, '*', 'guest'])),
    groups: optional(fc.subarray([...GROUPS, '*'])),
    allow: optional(rightsSubset),
    deny: optional(rightsSubset),
  })
  .map((r) => {
    // The class takes optional fields as absent, never as present-but-undefined.
    const out: PathRule = { path: r.path };
    if (r.users !== undefined) out.users = r.users;
    if (r.groups !== undefined) out.groups = r.groups;
    if (r.allow !== undefined) out.allow = r.allow;
    if (r.deny !== undefined) out.deny = r.deny;
    return out;
  });

const accessEntry: fc.Arbitrary<AccessEntry> = fc
  .record({
    users: optional(fc.subarray([...USERS, '*'])),
    groups: optional(fc.subarray([...GROUPS, '*'])),
    rights: fc.subarray(RIGHTS, { minLength: 1 }),
  })
  .map((e) => {
    const out: AccessEntry = { rights: e.rights };
    if (e.users !== undefined) out.users = e.users;
    if (e.groups !== undefined) out.groups = e.groups;
    return out;
  });

const shareConfig: fc.Arbitrary<ShareAclConfig> = fc
  .record({
    readOnly: optional(fc.boolean()),
    caseSensitive: optional(fc.boolean()),
    guest: optional(fc.constantFrom(false as const, 'read' as const)),
    access: optional(fc.array(accessEntry, { maxLength: 3 })),
    rules: fc.array(pathRule, { maxLength: 8 }),
  })
  .map((c) => {
    const out: ShareAclConfig = { name: 'fuzz', rules: c.rules };
    if (c.readOnly !== undefined) out.readOnly = c.readOnly;
    if (c.caseSensitive !== undefined) out.caseSensitive = c.caseSensitive;
    if (c.guest !== undefined) out.guest = c.guest;
    if (c.access !== undefined) out.access = c.access;
    return out;
  });

const principal: fc.Arbitrary<Principal> = fc
  .record({
    user: fc.constantFrom(...USERS, 'guest', 'dave'),
    groups: fc.subarray(GROUPS),
    guest: fc.boolean(),
  })
  .map(({ user, groups, guest }) => ({ user, uid: 1000, gid: 1000, groups, guest }));

const show = (cfg: ShareAclConfig, p: Principal, right: Right, path: string): string =>
  JSON.stringify({ cfg, p, right, path });

// ---------------------------------------------------------------------------------------------------

describe('ShareAcl against the reference model', () => {
  it('allows() agrees with the documented semantics for random rules, principals, rights and paths', () => {
    fc.assert(
      fc.property(shareConfig, principal, fc.constantFrom(...RIGHTS), queryPath, (cfg, p, right, path) => {
        const acl = new ShareAcl(cfg);
        expect(acl.allows(p, right, path), show(cfg, p, right, path)).toBe(refAllows(cfg, p, right, path));
      }),
      { numRuns: runs(3000) },
    );
  });

  it('a dense rule set: every principal, right and path of the alphabet agrees with the model', () => {
    fc.assert(
      fc.property(
        shareConfig,
        fc.array(pathRule, { minLength: 10, maxLength: 20 }),
        (cfg, more) => {
          const full: ShareAclConfig = { ...cfg, rules: [...(cfg.rules ?? []), ...more] };
          const acl = new ShareAcl(full);
          const paths = ['/', ...SEGMENTS.map((s) => `/${s}`), ...SEGMENTS.map((s) => `/fin/${s}`), '/a/b/fin/finance'];
          for (const user of [...USERS, 'guest']) {
            for (const guest of [false, true]) {
              const p: Principal = { user, uid: 1, gid: 1, groups: user === 'alice' ? ['g1'] : user === 'bob' ? ['g1', 'g2'] : [], guest };
              for (const right of RIGHTS) {
                for (const path of paths) {
                  expect(acl.allows(p, right, path), show(full, p, right, path)).toBe(refAllows(full, p, right, path));
                }
              }
            }
          }
        },
      ),
      { numRuns: runs(60) },
    );
  });

  it('check() throws exactly when allows() is false: EROFS for write/admin on a read-only share, else EACCES', () => {
    fc.assert(
      fc.property(shareConfig, principal, fc.constantFrom(...RIGHTS), queryPath, (cfg, p, right, path) => {
        const acl = new ShareAcl(cfg);
        const allowed = acl.allows(p, right, path);
        let thrown: unknown;
        try {
          acl.check(p, right, path);
        } catch (e) {
          thrown = e;
        }
        if (allowed) {
          expect(thrown).toBeUndefined();
          return;
        }
        expect(thrown).toBeInstanceOf(VfsError);
        expect((thrown as VfsError).code).toBe(cfg.readOnly === true && right !== 'read' ? 'EROFS' : 'EACCES');
      }),
      { numRuns: runs(RUNS) },
    );
  });

  it('whoever may read or write somewhere can see the share', () => {
    fc.assert(
      fc.property(shareConfig, principal, fc.constantFrom<Right>('read', 'write'), queryPath, (cfg, p, right, path) => {
        const acl = new ShareAcl(cfg);
        if (acl.allows(p, right, path)) expect(acl.visibleTo(p), show(cfg, p, right, path)).toBe(true);
      }),
      { numRuns: runs(RUNS) },
    );
  });

  it('rule paths are normalised: leading, trailing and doubled slashes do not change a decision', () => {
    fc.assert(
      fc.property(shareConfig, principal, fc.constantFrom(...RIGHTS), queryPath, (cfg, p, right, path) => {
        const canonical: ShareAclConfig = { ...cfg, rules: (cfg.rules ?? []).map((r) => ({ ...r, path: normalizePath(r.path) })) };
        expect(new ShareAcl(cfg).allows(p, right, path)).toBe(new ShareAcl(canonical).allows(p, right, path));
      }),
      { numRuns: runs(RUNS) },
    );
  });
});

describe('ShareAcl on case-insensitive shares', () => {
  /**
   * Names whose case variants are tricky: Greek letters with diacritics (upper-casing decomposes them),
   * titlecase digraphs, ligatures, dotted/dotless I. The German sharp s is a documented exception.
   */
  const TRICKY = ['fin', 'FIN', '\u00e9t\u00e9', '\u0390', '\u03b0', '\u1fd3', '\u01c5', '\u01f0', '\ufb00', '\u0130', '\u0131', '\u00b5', '\u03c2'];
  const trickySegs = fc.array(fc.constantFrom(...TRICKY), { minLength: 1, maxLength: 3 });
  const caseOp = fc.constantFrom<(s: string) => string>(
    (s) => s.toUpperCase(),
    (s) => s.toLowerCase(),
    (s) => s,
  );

  // Fails today (nameKey is not NFC-stable): with a rule on '/ΐ', the path '/Ϊ́' — the same name in
  // upper case — escapes the rule. Passes once nameKey re-normalises to NFC after folding.
  it('a rule covers every case variant of its path', () => {
    fc.assert(
      fc.property(
        trickySegs,
        fc.array(caseOp, { minLength: 3, maxLength: 3 }),
        fc.constantFrom<'allow' | 'deny'>('allow', 'deny'),
        (segments, ops, kind) => {
          const acl = new ShareAcl({
            name: 'ci',
            caseSensitive: false,
            // Share level grants write exactly when the rule denies it, so only the rule can decide.
            access: [{ users: ['*'], rights: kind === 'deny' ? ['read', 'write'] : ['read'] }],
            rules: [{ path: '/' + segments.join('/'), users: ['*'], [kind]: ['write'] }],
          });
          const variant = normalizePath('/' + segments.map((s, i) => (ops[i] ?? ((x: string) => x))(s)).join('/'));
          const p: Principal = { user: 'alice', uid: 1, gid: 1, groups: [], guest: false };
          expect(acl.allows(p, 'write', variant), `rule on ${JSON.stringify(segments)}, path ${JSON.stringify(variant)}`).toBe(kind === 'allow');
        },
      ),
      { numRuns: runs(RUNS) },
    );
  });
});
