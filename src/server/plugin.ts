/**
 * The protocol plugin contract and the one registry of protocol servers.
 *
 * `protocols/index.ts` is the only place that calls `registerProtocol()`; the gateway and the CLI
 * read `protocolRegistry` to know which protocols exist (for `--<name>-port` flags and startup).
 * A protocol named in the config but absent from the registry is simply not built yet.
 */
import type { PorticoConfig } from '../config/schema.ts';
import type { Logger } from '../log/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { SessionManager } from '../session/session-manager.ts';

export interface ProtocolContext {
  /** Effective config. Listen address for a plugin: `config.protocols[name].listen ?? config.server.listen`. */
  config: PorticoConfig;
  /** The one gate: protocols open sessions here and call nothing else of the core. */
  sessions: SessionManager;
  /** Already a child logger `{ protocol: name }`. */
  logger: Logger;
  metrics: Metrics;
}

export interface ProtocolPlugin {
  name: string;
  /** Listening? Used by /ready. */
  ready(): boolean;
  start(ctx: ProtocolContext): Promise<void>;
  /** Stop accepting, let in-flight work finish within graceMs, then close. */
  stop(graceMs: number): Promise<void>;
  /** One line for the startup log, e.g. 'webdav on http://0.0.0.0:8080'. */
  describe(): string;
}

export interface ProtocolDescriptor {
  name: string;
  /** Port used when the config does not name one (documentation and CLI help). */
  defaultPort: number;
  create(): ProtocolPlugin;
  /**
   * Protocols that need something optional of the machine (FUSE: its addon, /dev/fuse) say whether
   * they can run here and, if not, why and the command that enables them (logged at start, /health).
   */
  availability?(): ProtocolAvailability;
}

export type ProtocolAvailability = { available: true; detail?: string } | { available: false; reason: string; enable: string };

export const protocolRegistry: Map<string, ProtocolDescriptor> = new Map();

export function registerProtocol(d: ProtocolDescriptor): void {
  if (protocolRegistry.has(d.name)) throw new Error(`protocol ${d.name} registered twice`);
  protocolRegistry.set(d.name, d);
}
