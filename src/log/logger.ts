/**
 * Process logging (pino).
 *
 * Two independent loggers:
 * - the root logger (`createLogger`): operational messages, level from `log.level`;
 * - the audit logger (`createAuditLogger`): one JSON line per security-relevant event
 *   (logins, denials, file changes), logger name "audit", its own stream so it can be shipped or
 *   retained separately from operational logs. It is always JSON, never pretty-printed.
 *
 * Child logger convention (every component follows it so lines can be correlated):
 * - per connection/session: `logger.child({ session: sessionId, protocol: 'smb' })`
 * - per request inside a session: `sessionLogger.child({ req: n })` where n is the protocol's own
 *   request number when it has one (SMB MessageId, NFS xid, a per-connection counter for HTTP).
 * - per component: `logger.child({ component: 'vfs' })`.
 * The audit logger uses the same `session`/`protocol` keys plus `user`, `share`, `path`, `action`, `result`.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { PorticoConfig } from '../config/schema.ts';

export type { Logger };

type LogConfig = PorticoConfig['log'];

export interface CreateLoggerOptions {
  /** Write JSON lines here instead of stdout (tests, embedding); the format setting is then ignored. */
  destination?: NodeJS.WritableStream;
}

/** Keys whose values never reach a log line, at the top level of an entry and one level down. */
const SECRET_KEYS = ['password', 'secret', 'secretKey', 'authorization'];
const CENSOR = '[redacted]';

const BASE_OPTIONS: LoggerOptions = {
  // Never let credentials reach a log line, whatever a component passes in.
  redact: {
    paths: SECRET_KEYS.flatMap((k) => [k, `*.${k}`]),
    censor: CENSOR,
  },
};

function hasSecret(o: object): boolean {
  for (const k of SECRET_KEYS) if (Object.hasOwn(o, k)) return true;
  return false;
}

/**
 * The audit logger's redaction: the same keys as BASE_OPTIONS.redact (each at the top level and one
 * level down), checked by hand. pino's redact (@pinojs/redact 0.4) parses every path again at every
 * line and copies the entry: ~17 KB allocated and ~10-20 µs of CPU per audited change (a file
 * create through the session: ~40% of its allocations, measured with bench/create-cost.ts), while
 * an audit entry, built by the session from fixed fields, almost never holds such a key. An entry
 * that does is copied, never changed in place.
 */
export function censorSecrets(entry: Record<string, unknown>): Record<string, unknown> {
  let out = entry;
  for (const k in entry) {
    const v = entry[k];
    if (SECRET_KEYS.includes(k)) {
      if (out === entry) out = { ...entry };
      out[k] = CENSOR;
    } else if (v !== null && typeof v === 'object' && hasSecret(v)) {
      if (out === entry) out = { ...entry };
      const inner = (Array.isArray(v) ? Object.assign([], v) : { ...v }) as Record<string, unknown>;
      for (const s of SECRET_KEYS) if (Object.hasOwn(inner, s)) inner[s] = CENSOR;
      out[k] = inner;
    }
  }
  return out;
}

/** Whether logs should be pretty-printed: explicit 'pretty', or 'auto' with a terminal on stdout. */
export function usePretty(format: LogConfig['format'], isTty: boolean = process.stdout.isTTY === true): boolean {
  return format === 'pretty' || (format === 'auto' && isTty);
}

export function createLogger(cfg: LogConfig, opts: CreateLoggerOptions = {}): Logger {
  const options: LoggerOptions = { ...BASE_OPTIONS, level: cfg.level };
  if (opts.destination) return pino(options, opts.destination as DestinationStream);
  if (usePretty(cfg.format)) {
    // A transport runs pino-pretty in a worker thread, so formatting never blocks the protocol loop,
    // and pino-pretty (a dev dependency) is only resolved when someone actually asks for it.
    try {
      return pino({
        ...options,
        transport: {
          target: 'pino-pretty',
          options: { destination: 1, colorize: process.stdout.isTTY === true, translateTime: 'SYS:standard', ignore: 'pid,hostname' },
        },
      });
    } catch {
      // pino-pretty not installed (production install without dev dependencies): JSON is still readable.
    }
  }
  return pino(options);
}

export interface AuditLoggerOptions {
  /** Write here instead of the configured file/stdout (tests). */
  destination?: NodeJS.WritableStream;
}

/**
 * The audit logger: disabled -> a silent logger (calls cost nothing), '-' -> stdout,
 * otherwise a file opened for append (parent directories created).
 */
export function createAuditLogger(cfg: LogConfig, opts: AuditLoggerOptions = {}): Logger {
  // No child loggers (no bindings to redact): the entry is all a line carries.
  const options: LoggerOptions = { name: 'audit', level: 'info', formatters: { log: censorSecrets } };
  if (!cfg.audit.enabled) return pino({ ...options, level: 'silent' });
  if (opts.destination) return pino(options, opts.destination as DestinationStream);
  if (cfg.audit.file === '-') return pino(options, pino.destination({ dest: 1, sync: true }));
  const file = resolve(cfg.audit.file);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  // sync: an audit record must be on disk (in the page cache) before the operation is acknowledged,
  // and must not be lost on process.exit() after a signal. Kept after measuring: one write(2) of
  // ~250 bytes per audited change (reads are not audited), about 10 µs against 7 µs buffered —
  // under 1% of a 4 KiB WebDAV PUT, whose cost is the file system (create, fdatasync, rename).
  return pino(options, pino.destination({ dest: file, append: true, mkdir: true, sync: true }));
}
