/**
 * `auth.ldap`: the directory (OpenLDAP, Active Directory, any LDAPv3 server) as a second source of
 * users and groups beside the local user store. Every key is documented in
 * config/portico.example.yaml; src/config/schema.ts mounts this schema at `auth.ldap`.
 *
 * Decisions (and why):
 * - `null` (the default) = no directory. A section whose keys are all commented out reads as null
 *   too, so commenting out the block turns LDAP off instead of failing on a missing `userBase`.
 * - `url` is one URL or a list (tried in order, failover): a single string can also be set from the
 *   environment (`PORTICO_AUTH__LDAP__URL`), which cannot carry lists.
 * - Filters are templates: `{user}` and `{dn}` are replaced by RFC 4515-escaped values
 *   (src/auth/ldap-filter.ts), so they are never spliced in raw. Absent filters follow the preset
 *   (`activeDirectory`), resolved by `resolveLdapSettings` so the parsed config stays as written.
 * - `bindPassword` may come from the file (discouraged), the environment
 *   (`PORTICO_AUTH__LDAP__BIND_PASSWORD`) or `bindPasswordFile` (one line, trailing newline dropped,
 *   read at start); giving both is an error rather than a silent choice.
 * - TLS verification is on unless `tls.insecureSkipVerify` says otherwise; `tls.ca` adds a private CA
 *   (PEM file) instead of replacing trust in the system store for other peers.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { VfsError } from '../vfs/errors.ts';

export const LDAP_SOURCES = ['local', 'ldap'] as const;
export type AuthSource = (typeof LDAP_SOURCES)[number];

/** AD's LDAP_MATCHING_RULE_IN_CHAIN: `member:<oid>:=dn` walks nested groups on the server. */
export const LDAP_MATCHING_RULE_IN_CHAIN = '1.2.840.113556.1.4.1941';

// Same refinement as src/config/schema.ts (a failed `.int()` is fatal in zod 4 and hides other problems).
const int = () => z.number().refine(Number.isInteger, { error: 'must be an integer' });
const ldapUrl = z.string().regex(/^ldaps?:\/\/[^/?#\s]+\/?$/i, { error: 'must be ldap://host[:port] or ldaps://host[:port]' });
const attr = z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,63}$/, { error: 'must be an LDAP attribute name' });
const template = (...need: string[]) =>
  z
    .string()
    .min(3)
    .max(4096)
    .refine((s) => s.startsWith('(') && s.endsWith(')'), { error: 'must be an LDAP filter in parentheses' })
    .refine((s) => need.length === 0 || need.some((n) => s.includes(n)), { error: `must contain ${need.join(' or ')}` });

export const ldapSchema = z.strictObject({
  url: z.union([ldapUrl, z.array(ldapUrl).min(1).max(16)], { error: 'must be an ldap(s):// URL or a list of them' }),
  /** For ldap:// URLs: upgrade with StartTLS before anything else is sent. */
  startTls: z.boolean().default(false),
  tls: z
    .strictObject({
      /** PEM file of the CA that signed the directory's certificate. */
      ca: z.string().min(1).nullable().default(null),
      insecureSkipVerify: z.boolean().default(false),
    })
    .prefault({}),
  bindDn: z.string().min(1).nullable().default(null),
  bindPassword: z.string().min(1).nullable().default(null),
  bindPasswordFile: z.string().min(1).nullable().default(null),
  activeDirectory: z.boolean().default(false),
  userBase: z.string().min(1),
  userFilter: template('{user}').nullable().default(null),
  groupBase: z.string().min(1).nullable().default(null),
  groupFilter: template('{user}', '{dn}').nullable().default(null),
  /** Follow groups that are members of groups (AD: in the server via the in-chain rule; others: here, at most `maxGroupDepth` levels). */
  nestedGroups: z.boolean().default(true),
  maxGroupDepth: int().min(1).max(16).default(8),
  attributes: z
    .strictObject({
      user: attr.nullable().default(null),
      uidNumber: attr.default('uidNumber'),
      gidNumber: attr.default('gidNumber'),
      displayName: attr.default('displayName'),
      groupName: attr.default('cn'),
      groupGidNumber: attr.default('gidNumber'),
      ntHash: attr.default('sambaNTPassword'),
    })
    .prefault({}),
  /** Directory users without a uidNumber: AD maps the objectSid's RID to ridBase + RID; others are refused. */
  ridBase: int().min(1000).max(4_000_000_000).default(1_000_000),
  timeoutMs: int().min(100).max(120_000).default(5000),
  connectTimeoutMs: int().min(100).max(120_000).default(3000),
  poolSize: int().min(1).max(64).default(4),
  /** Successful logins and id lookups are remembered this long (0 = every login asks the directory). */
  cacheTtlMs: int().min(0).max(86_400_000).default(60_000),
  cacheSize: int().min(1).max(1_000_000).default(10_000),
  /** After a URL fails, it is not tried again for this long (circuit breaker), doubling up to 8x. */
  retryMs: int().min(100).max(600_000).default(5000),
  /** Which source answers a login first; the first source that knows the name decides. */
  order: z.array(z.enum(LDAP_SOURCES)).min(1).max(2).refine((o) => new Set(o).size === o.length, { error: 'must not name a source twice' }).default(['local', 'ldap']),
});

export type LdapConfig = z.infer<typeof ldapSchema>;

/** The config with presets applied and the service password read: what the directory client runs on. */
export interface LdapSettings {
  urls: string[];
  startTls: boolean;
  ca: string | undefined;
  insecureSkipVerify: boolean;
  bindDn: string | undefined;
  bindPassword: string | undefined;
  activeDirectory: boolean;
  userBase: string;
  userFilter: string;
  groupBase: string;
  groupFilter: string;
  /** Client-side nesting (non-AD); AD's in-chain filter already returns nested groups. */
  expandNested: boolean;
  maxGroupDepth: number;
  attributes: {
    user: string;
    uidNumber: string;
    gidNumber: string;
    displayName: string;
    groupName: string;
    groupGidNumber: string;
    ntHash: string;
  };
  ridBase: number;
  timeoutMs: number;
  connectTimeoutMs: number;
  poolSize: number;
  cacheTtlMs: number;
  cacheSize: number;
  retryMs: number;
  order: AuthSource[];
}

export function resolveLdapSettings(c: LdapConfig): LdapSettings {
  if (c.bindPassword !== null && c.bindPasswordFile !== null) {
    throw new VfsError('EINVAL', 'auth.ldap: set bindPassword or bindPasswordFile, not both');
  }
  let bindPassword = c.bindPassword ?? undefined;
  if (c.bindPasswordFile !== null) {
    try {
      bindPassword = readFileSync(c.bindPasswordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new VfsError('EINVAL', `auth.ldap.bindPasswordFile: cannot read ${c.bindPasswordFile}: ${(e as Error).message}`, { cause: e });
    }
    if (bindPassword === '') throw new VfsError('EINVAL', `auth.ldap.bindPasswordFile: ${c.bindPasswordFile} is empty`);
  }
  if (c.bindDn !== null && bindPassword === undefined) {
    throw new VfsError('EINVAL', 'auth.ldap: bindDn needs bindPassword (or bindPasswordFile, or PORTICO_AUTH__LDAP__BIND_PASSWORD)');
  }
  let ca: string | undefined;
  if (c.tls.ca !== null) {
    try {
      ca = readFileSync(c.tls.ca, 'utf8');
    } catch (e) {
      throw new VfsError('EINVAL', `auth.ldap.tls.ca: cannot read ${c.tls.ca}: ${(e as Error).message}`, { cause: e });
    }
  }
  const ad = c.activeDirectory;
  return {
    urls: typeof c.url === 'string' ? [c.url] : [...c.url],
    startTls: c.startTls,
    ca,
    insecureSkipVerify: c.tls.insecureSkipVerify,
    bindDn: c.bindDn ?? undefined,
    bindPassword,
    activeDirectory: ad,
    userBase: c.userBase,
    // AD: the pre-Windows-2000 name or the UPN (alice@example.com) both log in.
    userFilter: c.userFilter ?? (ad ? '(&(objectClass=user)(|(sAMAccountName={user})(userPrincipalName={user})))' : '(uid={user})'),
    groupBase: c.groupBase ?? c.userBase,
    groupFilter:
      c.groupFilter ??
      (ad
        ? c.nestedGroups
          ? `(&(objectClass=group)(member:${LDAP_MATCHING_RULE_IN_CHAIN}:={dn}))`
          : '(&(objectClass=group)(member={dn}))'
        : '(|(member={dn})(uniqueMember={dn})(memberUid={user}))'),
    expandNested: c.nestedGroups && !ad,
    maxGroupDepth: c.maxGroupDepth,
    attributes: { ...c.attributes, user: c.attributes.user ?? (ad ? 'sAMAccountName' : 'uid') },
    ridBase: c.ridBase,
    timeoutMs: c.timeoutMs,
    connectTimeoutMs: c.connectTimeoutMs,
    poolSize: c.poolSize,
    cacheTtlMs: c.cacheTtlMs,
    cacheSize: c.cacheSize,
    retryMs: c.retryMs,
    order: [...c.order],
  };
}
