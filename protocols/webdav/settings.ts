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
  /** Properties one PROPFIND may name (prop, or allprop's include); more -> 413. */
  maxPropfindProperties: number;
  /** Largest PROPFIND answer, estimated before the work (-> 403) and counted while streaming. */
  maxPropfindResponseBytes: number;
  /** Properties one PROPPATCH may set or remove; more -> 413 while the body is parsed. */
  maxProppatchProperties: number;
  /** Largest dead property value PROPPATCH stores (the element as stored, UTF-8); larger -> 413. */
  maxPropertyValueBytes: number;
}

export const WEBDAV_DEFAULTS = {
  maxLockTimeoutSeconds: 3600,
  depthInfinity: false,
  authCacheSeconds: 60,
  idleTimeoutMs: 120_000,
  requestTimeoutMs: 0,
  /**
   * Clients name 5-20 properties (Windows WebClient about a dozen, Finder, rclone and davfs2
   * fewer); a few hundred is far above any of them, and it bounds what one `<D:prop>` can multiply
   * by the number of members (the 45,000-name PROPFIND of issue 15 made a 603 MB answer).
   */
  maxPropfindProperties: 256,
  /**
   * An allprop answer is ~700 bytes per member, so 128 MiB is a Depth 1 listing of ~190,000
   * members (the 10,000-member benchmark directory makes 7 MB); a bigger answer takes seconds of
   * CPU and that much bandwidth for one request.
   */
  maxPropfindResponseBytes: 128 * 1024 * 1024,
  /**
   * Clients set a handful per request (Windows WebClient the four Win32 times and attributes, litmus
   * at most a few dozen); a PROPPATCH of 40,000 properties (430 KB) used to hold the event loop
   * ~690 ms parsing and storing them in one piece.
   */
  maxProppatchProperties: 256,
  /**
   * Dead properties are metadata (tags, checksums, a client's bookkeeping: bytes to a few KB); every
   * allprop PROPFIND of the collection sends each value again, per member.
   */
  maxPropertyValueBytes: 64 * 1024,
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
    maxPropfindProperties: pick('maxPropfindProperties', WEBDAV_DEFAULTS.maxPropfindProperties),
    maxPropfindResponseBytes: pick('maxPropfindResponseBytes', WEBDAV_DEFAULTS.maxPropfindResponseBytes),
    maxProppatchProperties: pick('maxProppatchProperties', WEBDAV_DEFAULTS.maxProppatchProperties),
    maxPropertyValueBytes: pick('maxPropertyValueBytes', WEBDAV_DEFAULTS.maxPropertyValueBytes),
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
    maxPropfindProperties: o.maxPropfindProperties,
    maxPropfindResponseBytes: o.maxPropfindResponseBytes,
    maxProppatchProperties: o.maxProppatchProperties,
    maxPropertyValueBytes: o.maxPropertyValueBytes,
    refuseAppleDouble: new Set(config.shares.filter((s) => s.webdav?.refuseAppleDouble === true).map((s) => s.name.toLowerCase())),
  };
}
