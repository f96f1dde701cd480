/**
 * WebDAV settings from the config (`protocols.webdav`, `shares[].webdav`), with their defaults.
 * The schema (src/config/schema.ts) validates the keys; the defaults live here so the parsed config
 * only holds what the file said.
 */
import type { PorticoConfig } from '../../src/config/schema.ts';
import { DEFAULT_XML_LIMITS } from './xml.ts';
import type { DavSettings } from './context.ts';

export interface WebdavOptions {
  port: number;
  listen: string;
  tls: { cert: string; key: string } | null;
  maxLockTimeoutSeconds: number;
  depthInfinity: boolean;
  authCacheSeconds: number;
  /** A connection idle this long (no bytes either way) is closed. */
  idleTimeoutMs: number;
  /** Whole-request time limit (0 = none: large uploads over slow links take hours). */
  requestTimeoutMs: number;
}

export const WEBDAV_DEFAULTS = {
  maxLockTimeoutSeconds: 3600,
  depthInfinity: false,
  authCacheSeconds: 60,
  idleTimeoutMs: 120_000,
  requestTimeoutMs: 0,
} as const;

/** Time allowed for the request line and headers (slowloris guard). */
export const HEADERS_TIMEOUT_MS = 20_000;
/** Idle keep-alive connections are closed after this. */
export const KEEP_ALIVE_TIMEOUT_MS = 10_000;
/** Largest request head (request line + headers); node answers 431 beyond it. */
export const MAX_HEADER_BYTES = 16 * 1024;

export function webdavOptions(config: PorticoConfig): WebdavOptions {
  const w = config.protocols.webdav as Record<string, unknown> & { port: number; listen?: string };
  const pick = <T>(k: keyof typeof WEBDAV_DEFAULTS, d: T): T => (w[k] === undefined ? d : (w[k] as T));
  return {
    port: w.port,
    listen: w.listen ?? config.server.listen,
    tls: (w.tls as WebdavOptions['tls'] | undefined) ?? null,
    maxLockTimeoutSeconds: pick('maxLockTimeoutSeconds', WEBDAV_DEFAULTS.maxLockTimeoutSeconds),
    depthInfinity: pick('depthInfinity', WEBDAV_DEFAULTS.depthInfinity),
    authCacheSeconds: pick('authCacheSeconds', WEBDAV_DEFAULTS.authCacheSeconds),
    idleTimeoutMs: pick('idleTimeoutMs', WEBDAV_DEFAULTS.idleTimeoutMs),
    requestTimeoutMs: pick('requestTimeoutMs', WEBDAV_DEFAULTS.requestTimeoutMs),
  };
}

export function davSettings(config: PorticoConfig, o: WebdavOptions = webdavOptions(config)): DavSettings {
  const maxLock = o.maxLockTimeoutSeconds * 1000;
  return {
    maxLockTimeoutMs: maxLock,
    defaultLockTimeoutMs: maxLock,
    depthInfinity: o.depthInfinity,
    xmlLimits: DEFAULT_XML_LIMITS,
    maxHtmlEntries: 50_000,
    maxInfinityEntries: 100_000,
    refuseAppleDouble: new Set(config.shares.filter((s) => s.webdav?.refuseAppleDouble === true).map((s) => s.name.toLowerCase())),
  };
}
