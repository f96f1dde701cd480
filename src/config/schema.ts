/**
 * The configuration schema (every key is documented in config/portico.example.yaml).
 *
 * Decisions (and why):
 * - Every object is strict except `protocols.*` and `shares[].options`: a typo such as `server.lisen`
 *   must fail loudly instead of silently leaving the default in force. Protocol entries pass unknown
 *   keys through because each protocol plugin validates its own options later, and unknown protocol
 *   names are accepted for future plugins.
 * - Nested sections use `.prefault({})` (zod 4): the empty object is parsed, so inner defaults apply
 *   when a whole section is absent (`.default({})` would return `{}` untouched).
 * - The four built-in protocols always exist with their default ports, so setting one key
 *   (`PORTICO_PROTOCOLS__WEBDAV__PORT=0`) never removes the others; port 0 is how one is disabled.
 * - `shares[].protocols` defaults to every configured protocol (including plugin ones), and must only
 *   name configured protocols.
 * - Rule paths are normalised exactly like wire paths (src/vfs/path.ts), so the ACL code can compare
 *   them with the paths it receives ('/finance/' and '/finance' are the same rule).
 * - Error messages are phrased "must ..." so that load.ts can print `<key>: <message> (got <value>)`.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { normalizePath } from '../vfs/path.ts';
import { isVfsError } from '../vfs/errors.ts';
import { WRITE_BACK_DEFAULTS, WRITE_BACK_MODES } from '../vfs/write-back.ts';
import { ADMISSION_DEFAULTS } from '../session/admission.ts';
import { ldapSchema } from '../auth/ldap-config.ts';

export const RIGHTS = ['read', 'write', 'admin'] as const;
export type Right = (typeof RIGHTS)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export const FIRST_RUN_MODES = ['create-admin', 'loopback-only'] as const;
export const BUILTIN_PROTOCOLS = ['webdav', 'nfs', 'smb', 'fuse'] as const;

export const SHARE_NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
/** Same alphabet as local user names (src/auth/local-users.ts), plus '*' = any authenticated user. */
export const PRINCIPAL_NAME_RE = /^[A-Za-z0-9._@-]{1,64}$/;

/**
 * Cross-field checks run even when a sibling key already failed (zod 4 skips them by default), so one
 * run reports every problem; they guard against the partially parsed value themselves.
 */
const whenObject = { when: (p: { value: unknown }) => typeof p.value === 'object' && p.value !== null && !Array.isArray(p.value) };

/**
 * Integer check as a refinement rather than `.int()`: zod 4 treats a failed `.int()` as fatal and then
 * skips every cross-field check, hiding the other problems of the file.
 */
const int = () => z.number().refine(Number.isInteger, { error: 'must be an integer' });

const port = int().min(0).max(65535);
const listen = z.string().min(1);
const userName = z.string().refine((s) => s === '*' || PRINCIPAL_NAME_RE.test(s), {
  error: "must be '*' or match [A-Za-z0-9._@-]{1,64}",
});
/**
 * Group names in grants and rules are wider than user names: directory groups are named by people
 * (Active Directory's "Domain Users", a German domain's "Domänen-Benutzer", "R&D (EU)"), and a grant
 * must be able to name them as the directory spells them. Any characters but control characters and
 * '*' (which means any authenticated user and is spelled only on its own in `users`), no leading or
 * trailing space, at most 256 (AD's sAMAccountName limit). Local groups keep the user-name alphabet
 * (src/auth/local-users.ts), so a name with a space only ever matches a directory group.
 */
export const GROUP_NAME_RE = /^(?=[^\s])(?=[\s\S]*[^\s]$)[^\p{Cc}*]{1,256}$/u;
const groupName = z.string().regex(GROUP_NAME_RE, {
  error: "must be 1-256 characters, without control characters or '*', and not start or end with a space",
});
const right = z.enum(RIGHTS);
const rights = z.array(right);

const serverSchema = z.strictObject({
  listen: listen.default('0.0.0.0'),
  stateDir: z.string().min(1).default('./state'),
  shutdownGraceMs: int().min(0).default(10000),
  /** Attributes and lookups by id answered from memory for this long (src/vfs/attr-cache.ts); 0 = off. */
  attrCacheMs: int().min(0).max(60_000).default(1000),
});

const adminSchema = z.strictObject({
  port: port.default(9090),
  listen: listen.default('127.0.0.1'),
});

/** Settings shared by every S3 share (a share's own `options` win). */
const s3Schema = z.strictObject({
  tls: z.strictObject({ ca: z.string().min(1).nullable().default(null) }).prefault({}),
});

const logSchema = z.strictObject({
  level: z.enum(LOG_LEVELS).default('info'),
  format: z.enum(LOG_FORMATS).default('auto'),
  audit: z
    .strictObject({
      enabled: z.boolean().default(true),
      file: z.string().min(1).default('-'),
    })
    .prefault({}),
});

const throttleSchema = z
  .strictObject({
    maxFailures: int().min(1).default(5),
    windowMs: int().min(1).default(900000),
    lockoutMs: int().min(1).default(60000),
    maxLockoutMs: int().min(1).default(900000),
  })
  .superRefine((t, ctx) => {
    if (typeof t.maxLockoutMs === 'number' && typeof t.lockoutMs === 'number' && t.maxLockoutMs < t.lockoutMs) {
      ctx.addIssue({ code: 'custom', path: ['maxLockoutMs'], input: t.maxLockoutMs, message: `must be >= lockoutMs (${t.lockoutMs})` });
    }
  }, whenObject);

const authSchema = z.strictObject({
  secretKey: z.string().min(32).nullable().default(null),
  bcryptRounds: int().min(4).max(15).default(12),
  firstRun: z.enum(FIRST_RUN_MODES).default('create-admin'),
  throttle: throttleSchema.prefault({}),
  /** Directory users and groups (src/auth/ldap-config.ts); null = local users only. */
  ldap: ldapSchema.nullable().default(null),
});

/**
 * Per-client and per-user caps on connections and requests in flight, shared by every protocol
 * (src/session/admission.ts holds the counters, the defaults and the reasons for them). 0 = no cap.
 */
const limitsSchema = z.strictObject({
  maxConnectionsPerClient: int().min(0).default(ADMISSION_DEFAULTS.maxConnectionsPerClient),
  maxInFlightPerClient: int().min(0).default(ADMISSION_DEFAULTS.maxInFlightPerClient),
  maxInFlightPerUser: int().min(0).default(ADMISSION_DEFAULTS.maxInFlightPerUser),
  inFlightWaitMs: int().min(0).max(60_000).default(ADMISSION_DEFAULTS.inFlightWaitMs),
});

/**
 * Leases, durable handles and the grace period after a restart (src/locks/leases.ts,
 * durable-handles.ts, client-records.ts): shared by every protocol.
 */
const locksSchema = z.strictObject({
  /** How long a lease/oplock/delegation holder has to acknowledge a break before it is revoked (SMB: 35 s). */
  leaseBreakTimeoutMs: int().min(1).max(600_000).default(35_000),
  /** After a restart, clients may reclaim their opens and locks for this long (NFS: one lease time, 90 s); 0 = none. */
  graceMs: int().min(0).max(3_600_000).default(90_000),
  /** The longest a durable handle is kept for its client's reconnect (SMB durable v2 asks for a timeout). */
  durableHandleMaxMs: int().min(1).max(3_600_000).default(300_000),
});

/** A protocol entry: port (0 disables) and listen (default server.listen), plus the plugin's own keys. */
const protocolEntrySchema = z.looseObject({
  port: port.optional(),
  listen: listen.optional(),
});
const portProtocol = (defaultPort: number) =>
  z.looseObject({ port: port.default(defaultPort), listen: listen.optional() }).prefault({});

/** SMB's own options; `encrypt` is checked here (a misspelt value must not fall back to off). */
const SMB_ENCRYPT = ['off', 'desired', 'required'] as const;
const smbProtocol = z
  .looseObject({ port: port.default(445), listen: listen.optional(), encrypt: z.enum(SMB_ENCRYPT).optional() })
  .prefault({});

/**
 * WebDAV's own options (protocols/webdav/settings.ts applies the defaults, so the parsed config
 * only holds what was written). Loose like every protocol entry.
 */
const webdavProtocol = z
  .looseObject({
    port: port.default(8080),
    listen: listen.optional(),
    tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).nullable().optional(),
    maxLockTimeoutSeconds: int().min(1).optional(),
    depthInfinity: z.boolean().optional(),
    authCacheSeconds: int().min(0).optional(),
    idleTimeoutMs: int().min(0).optional(),
    requestTimeoutMs: int().min(0).optional(),
    // Work bounds of one PROPFIND (protocols/webdav/methods/propfind.ts).
    maxPropfindProperties: int().min(1).optional(),
    maxPropfindResponseBytes: int().min(1024).optional(),
    // Work bounds of one PROPPATCH (protocols/webdav/methods/proppatch.ts).
    maxProppatchProperties: int().min(1).optional(),
    maxPropertyValueBytes: int().min(1024).optional(),
  })
  .prefault({});

/**
 * NFSv4's own options: AUTH_SYS squashing and the anonymous ids, the idmap domain of owners, and
 * the wire bounds (protocols/nfs/plugin.ts applies the defaults — NFS_DEFAULTS —, so the parsed
 * config only holds what was written). A record must hold the largest WRITE plus its headers.
 */
export const NFS_DEFAULTS = {
  squash: 'root',
  anonUid: 65534,
  anonGid: 65534,
  /** Largest RPC record read from a client (fragments and headers together). */
  maxRecordBytes: 1024 * 1024 + 64 * 1024,
  /** Largest COMPOUND (operations); 4.1 sessions negotiate at most this many. */
  maxCompoundOps: 100,
  maxReadBytes: 1024 * 1024,
  maxWriteBytes: 1024 * 1024,
  maxConnections: 4096,
  /** RPC calls running at once on one connection (more wait, reading pauses). */
  maxRequestsPerConnection: 128,
  idleTimeoutMs: 6 * 60_000,
} as const;
/** What a record needs beyond a WRITE's data: RPC header, credential, the COMPOUND's other operations. */
export const NFS_RECORD_HEADROOM = 64 * 1024;

const nfsProtocol = z
  .looseObject({
    port: port.default(2049),
    listen: listen.optional(),
    squash: z.enum(['none', 'root', 'all']).optional(),
    anonUid: int().min(0).max(4294967294).optional(),
    anonGid: int().min(0).max(4294967294).optional(),
    /** Owners as user@domain (absent: numeric strings, as Linux clients with AUTH_SYS expect). */
    idmapDomain: z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/, { error: 'must be a DNS domain name (e.g. example.com)' }).optional(),
    maxRecordBytes: int().min(64 * 1024 + NFS_RECORD_HEADROOM).max(64 * 1024 * 1024 + NFS_RECORD_HEADROOM).optional(),
    maxCompoundOps: int().min(2).max(4096).optional(),
    maxReadBytes: int().min(4096).max(64 * 1024 * 1024).optional(),
    maxWriteBytes: int().min(4096).max(64 * 1024 * 1024).optional(),
    maxConnections: int().min(1).max(1_000_000).optional(),
    maxRequestsPerConnection: int().min(1).max(65536).optional(),
    idleTimeoutMs: int().min(0).max(86_400_000).optional(),
  })
  .superRefine((o, ctx) => {
    const write = typeof o.maxWriteBytes === 'number' ? o.maxWriteBytes : NFS_DEFAULTS.maxWriteBytes;
    const record = typeof o.maxRecordBytes === 'number' ? o.maxRecordBytes : NFS_DEFAULTS.maxRecordBytes;
    if (record < write + NFS_RECORD_HEADROOM) {
      const key = typeof o.maxRecordBytes === 'number' ? 'maxRecordBytes' : 'maxWriteBytes';
      ctx.addIssue({ code: 'custom', path: [key], input: o[key], message: `must leave room for a whole WRITE: maxRecordBytes (${record}) >= maxWriteBytes (${write}) + ${NFS_RECORD_HEADROOM}` });
    }
  }, whenObject)
  .prefault({});

const protocolsSchema = z
  .object({
    webdav: webdavProtocol,
    nfs: nfsProtocol,
    smb: smbProtocol,
    // FUSE mounts instead of listening: null = not mounted (protocols/fuse/plugin.ts has the keys).
    fuse: z
      .looseObject({
        mountpoint: z.string().min(1).nullable().default(null),
        user: z.string().min(1).optional(),
        share: z.string().min(1).optional(),
        attrTimeout: z.number().min(0).max(86_400).optional(),
        entryTimeout: z.number().min(0).max(86_400).optional(),
        allowOther: z.boolean().optional(),
        writeback: z.boolean().optional(),
        invalidate: z.boolean().optional(),
      })
      .prefault({}),
  })
  .catchall(protocolEntrySchema);

export const accessEntrySchema = z
  .strictObject({
    users: z.array(userName).optional(),
    groups: z.array(groupName).optional(),
    rights: rights.min(1),
  })
  .superRefine((a, ctx) => {
    if (a.users === undefined && a.groups === undefined) {
      ctx.addIssue({ code: 'custom', path: [], input: a, message: 'must name users or groups (or both)' });
    }
  }, whenObject);

const rulePath = z.string().transform((p, ctx) => {
  if (!p.startsWith('/')) {
    ctx.addIssue({ code: 'custom', input: p, message: "must start with '/'" });
    return z.NEVER;
  }
  try {
    return normalizePath(p);
  } catch (e) {
    if (!isVfsError(e)) throw e;
    ctx.addIssue({ code: 'custom', input: p, message: `must be a valid share path: ${e.message}` });
    return z.NEVER;
  }
});

export const pathRuleSchema = z
  .strictObject({
    path: rulePath,
    users: z.array(userName).optional(),
    groups: z.array(groupName).optional(),
    allow: rights.optional(),
    deny: rights.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.users === undefined && r.groups === undefined) {
      ctx.addIssue({ code: 'custom', path: [], input: r, message: 'must name users or groups (or both)' });
    }
    if (r.allow === undefined && r.deny === undefined) {
      ctx.addIssue({ code: 'custom', path: [], input: r, message: 'must have allow or deny (or both)' });
    }
  }, whenObject);

/**
 * `shares[].writeBack`: `sync` (default) | `async`, or an object with `mode` and the tuning keys.
 * Semantics in src/vfs/write-back.ts and config/portico.example.yaml. Only object-store backends
 * (no random writes) stage writes, so the key has no effect on local or memory:posix shares.
 */
const writeBackSchema = z.preprocess(
  (v) => (typeof v === 'string' ? { mode: v } : v),
  z
    .strictObject({
      mode: z.enum(WRITE_BACK_MODES).default(WRITE_BACK_DEFAULTS.mode),
      maxConcurrentUploads: int().min(1).max(256).default(WRITE_BACK_DEFAULTS.maxConcurrentUploads),
      maxPendingUploads: int().min(1).default(WRITE_BACK_DEFAULTS.maxPendingUploads),
      retryBaseMs: int().min(1).default(WRITE_BACK_DEFAULTS.retryBaseMs),
      retryMaxMs: int().min(1).default(WRITE_BACK_DEFAULTS.retryMaxMs),
      permanentFailureAttempts: int().min(1).default(WRITE_BACK_DEFAULTS.permanentFailureAttempts),
      shutdownDrainMs: int().min(0).default(WRITE_BACK_DEFAULTS.shutdownDrainMs),
      uploadDelayMs: int().min(0).max(3_600_000).default(WRITE_BACK_DEFAULTS.uploadDelayMs),
      fsync: z.boolean().default(WRITE_BACK_DEFAULTS.fsync),
    })
    .superRefine((w, ctx) => {
      if (typeof w.retryMaxMs === 'number' && typeof w.retryBaseMs === 'number' && w.retryMaxMs < w.retryBaseMs) {
        ctx.addIssue({ code: 'custom', path: ['retryMaxMs'], input: w.retryMaxMs, message: `must be >= retryBaseMs (${w.retryBaseMs})` });
      }
    }, whenObject),
);

/**
 * `shares[].nfs.clients[].match`: one address (`192.0.2.7`, `2001:db8::1`), a network in CIDR
 * notation (`192.0.2.0/24`, `2001:db8::/32`) or `*` (every client). Host names are not accepted:
 * matching them needs a reverse lookup per new client, which whoever controls the client's DNS
 * answers (written down in protocols/nfs/README.md).
 */
export function parseClientMatch(text: string): { kind: 'any' } | { kind: 'net'; family: 'ipv4' | 'ipv6'; address: string; prefix: number } | undefined {
  if (text === '*') return { kind: 'any' };
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const v = isIP(address);
  if (v === 0) return undefined;
  const max = v === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) return undefined;
    prefix = Number(p);
  }
  return { kind: 'net', family: v === 4 ? 'ipv4' : 'ipv6', address, prefix };
}

const nfsClientSchema = z.strictObject({
  match: z.string().refine((s) => parseClientMatch(s) !== undefined, { error: "must be an IP address, a CIDR network (a.b.c.d/n, x::/n) or '*'" }),
  /** rw: what the share and the ACL allow; ro: read-only for these clients (NFS4ERR_ROFS on changes). */
  access: z.enum(['rw', 'ro']).default('rw'),
  /** AUTH_SYS squashing for these clients in this export (absent: protocols.nfs.squash). */
  squash: z.enum(['none', 'root', 'all']).optional(),
  /** The anonymous ids for these clients in this export (absent: protocols.nfs.anonUid/anonGid). */
  anonUid: int().min(0).max(4294967294).optional(),
  anonGid: int().min(0).max(4294967294).optional(),
});

const shareSchema = z.strictObject({
  name: z.string().regex(SHARE_NAME_RE, { error: 'must match [A-Za-z0-9._-]{1,64}' }),
  source: z.string().min(1),
  options: z.record(z.string(), z.unknown()).default({}),
  readOnly: z.boolean().default(false),
  caseSensitive: z.boolean().default(true),
  /** Absent = every configured protocol (filled in by configSchema). */
  protocols: z.array(z.string().min(1)).optional(),
  guest: z.union([z.literal(false), z.literal('read')], { error: 'must be false or "read" (guest write is never allowed)' }).default(false),
  access: z.array(accessEntrySchema).default(() => [{ users: ['*'], rights: ['read', 'write'] as Right[] }]),
  rules: z.array(pathRuleSchema).default([]),
  /** New symbolic links leading outside the share: refused (default) or kept (src/acl/acl.ts). */
  symlinks: z.enum(['refuse', 'keep']).default('refuse'),
  /**
   * NFS-only share options: `clients`, the addresses that may use the export and how (first match
   * wins, like an /etc/exports line read left to right; absent = every client, rw). Others get
   * NFS4ERR_ACCESS entering the export (protocols/nfs/server/exports.ts).
   */
  nfs: z.strictObject({ clients: z.array(nfsClientSchema).min(1).optional() }).optional(),
  /** SMB-only share options: `encrypt` (absent = protocols.smb.encrypt; protocols/smb/server/share-policy.ts). */
  smb: z.strictObject({ encrypt: z.enum(SMB_ENCRYPT).optional() }).optional(),
  /** WebDAV-only share options (absent = defaults). */
  webdav: z.strictObject({ refuseAppleDouble: z.boolean().optional() }).optional(),
  /**
   * When a close/flush on an object-store share returns: after the upload (sync) or after a local
   * journal write (async). Absent = sync (the VFS applies WRITE_BACK_DEFAULTS; kept absent so the
   * parsed config of a share that does not use it stays as it was).
   */
  writeBack: writeBackSchema.optional(),
  /**
   * Per-share quota (src/vfs/quota.ts): most bytes (sum of file sizes) and names; past either,
   * changes that grow usage fail with EDQUOT (WebDAV 507). Absent = none (kept absent when unset).
   */
  quota: z.strictObject({ bytes: int().min(0).optional(), files: int().min(0).optional() }).optional(),
});

const baseSchema = z
  .strictObject({
    server: serverSchema.prefault({}),
    admin: adminSchema.prefault({}),
    s3: s3Schema.prefault({}),
    log: logSchema.prefault({}),
    auth: authSchema.prefault({}),
    limits: limitsSchema.prefault({}),
    locks: locksSchema.prefault({}),
    protocols: protocolsSchema.prefault({}),
    shares: z.array(shareSchema).min(1, { error: 'must have at least one share' }),
  })
  .superRefine((c, ctx) => {
    // Refinements may run on partially valid input (zod 4 keeps going after non-fatal issues).
    const protocols = (c.protocols ?? {}) as Record<string, unknown>;
    const shares = Array.isArray(c.shares) ? c.shares : [];
    const seen = new Map<string, number>();
    shares.forEach((s, i) => {
      if (typeof s?.name !== 'string') return;
      const k = s.name.toLowerCase();
      const j = seen.get(k);
      if (j !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['shares', i, 'name'], input: s.name, message: `must be unique (case-insensitively); shares[${j}].name is "${shares[j]!.name}"` });
      } else seen.set(k, i);
      if (!Array.isArray(s.protocols)) return;
      s.protocols.forEach((p, pi) => {
        if (!Object.hasOwn(protocols, p)) {
          ctx.addIssue({ code: 'custom', path: ['shares', i, 'protocols', pi], input: p, message: `must name a configured protocol (${Object.keys(protocols).join(', ')})` });
        }
      });
    });
  }, whenObject);

export const configSchema = baseSchema.transform((c) => ({
  ...c,
  shares: c.shares.map((s) => ({ ...s, protocols: s.protocols ?? Object.keys(c.protocols) })),
}));

export type PorticoConfig = z.infer<typeof configSchema>;
/** The config as written (before defaults), e.g. for building one in code. */
export type PorticoConfigInput = z.input<typeof configSchema>;
export type ShareConfig = PorticoConfig['shares'][number];
export type AccessEntry = z.infer<typeof accessEntrySchema>;
export type PathRule = z.infer<typeof pathRuleSchema>;
export type ProtocolConfig = z.infer<typeof protocolEntrySchema>;
