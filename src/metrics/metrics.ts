/**
 * Prometheus metrics for the whole process.
 *
 * Each `Metrics` owns its own `Registry` rather than prom-client's global one, so several gateways
 * (and tests) can live in one process without "metric already registered" errors.
 *
 * Label conventions:
 * - `protocol`: plugin name ('webdav', 'nfs', 'smb', 'fuse').
 * - `op`: protocol operation name as the protocol spells it (PROPFIND, READ, SMB2_CREATE...), or a
 *   backend method name ('stat', 'file.read', 'writer.commit').
 * - `status`: 'ok' or a VfsError code (ENOENT, EACCES...), never free text, so cardinality stays bounded.
 * - `backend`: the share name the backend serves.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** 100 µs .. 10 s: a cached stat is ~100 µs, an S3 multipart commit can take seconds. */
export const DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export interface MetricsOptions {
  /** Process metrics (CPU, memory, event loop lag, GC). Default true. */
  defaultMetrics?: boolean;
}

export class Metrics {
  readonly registry: Registry;

  readonly requestsTotal: Counter<'protocol' | 'op' | 'status'>;
  readonly requestDuration: Histogram<'protocol' | 'op'>;
  readonly bytesRead: Counter<'protocol'>;
  readonly bytesWritten: Counter<'protocol'>;
  readonly sessionsOpen: Gauge<'protocol'>;
  readonly connectionsOpen: Gauge<'protocol'>;

  readonly backendRequestsTotal: Counter<'backend' | 'op' | 'status'>;
  readonly backendErrorsTotal: Counter<'backend' | 'op' | 'code'>;
  readonly backendRequestDuration: Histogram<'backend' | 'op'>;

  readonly cacheHits: Counter<'cache'>;
  readonly cacheMisses: Counter<'cache'>;
  readonly cacheEvictions: Counter<'cache'>;
  readonly cacheBytes: Gauge<'cache'>;

  readonly authFailures: Counter<'protocol' | 'reason'>;

  constructor(options: MetricsOptions = {}) {
    this.registry = new Registry();
    const registers = [this.registry];
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });

    this.requestsTotal = new Counter({
      name: 'portico_requests_total',
      help: 'Protocol requests handled, by outcome (ok or VfsError code)',
      labelNames: ['protocol', 'op', 'status'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'portico_request_duration_seconds',
      help: 'Protocol request latency',
      labelNames: ['protocol', 'op'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.bytesRead = new Counter({
      name: 'portico_bytes_read_total',
      help: 'File content bytes sent to clients',
      labelNames: ['protocol'],
      registers,
    });
    this.bytesWritten = new Counter({
      name: 'portico_bytes_written_total',
      help: 'File content bytes received from clients',
      labelNames: ['protocol'],
      registers,
    });
    this.sessionsOpen = new Gauge({
      name: 'portico_sessions_open',
      help: 'Authenticated sessions currently open',
      labelNames: ['protocol'],
      registers,
    });
    this.connectionsOpen = new Gauge({
      name: 'portico_connections_open',
      help: 'Transport connections currently open',
      labelNames: ['protocol'],
      registers,
    });
    this.backendRequestsTotal = new Counter({
      name: 'portico_backend_requests_total',
      help: 'Backend calls, by outcome (ok or VfsError code)',
      labelNames: ['backend', 'op', 'status'],
      registers,
    });
    this.backendErrorsTotal = new Counter({
      name: 'portico_backend_errors_total',
      help: 'Backend calls that failed, by VfsError code',
      labelNames: ['backend', 'op', 'code'],
      registers,
    });
    this.backendRequestDuration = new Histogram({
      name: 'portico_backend_request_duration_seconds',
      help: 'Backend call latency',
      labelNames: ['backend', 'op'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.cacheHits = new Counter({ name: 'portico_cache_hits_total', help: 'Cache hits', labelNames: ['cache'], registers });
    this.cacheMisses = new Counter({ name: 'portico_cache_misses_total', help: 'Cache misses', labelNames: ['cache'], registers });
    this.cacheEvictions = new Counter({
      name: 'portico_cache_evictions_total',
      help: 'Cache entries evicted',
      labelNames: ['cache'],
      registers,
    });
    this.cacheBytes = new Gauge({ name: 'portico_cache_bytes', help: 'Bytes held by a cache', labelNames: ['cache'], registers });
    this.authFailures = new Counter({
      name: 'portico_auth_failures_total',
      help: 'Failed authentications, by reason (bad-password, unknown-user, throttled, ...)',
      labelNames: ['protocol', 'reason'],
      registers,
    });
  }

  /** One finished protocol request. `status` is 'ok' or a VfsError code. */
  observeRequest(protocol: string, op: string, status: string, seconds: number): void {
    this.requestsTotal.labels(protocol, op, status).inc();
    this.requestDuration.labels(protocol, op).observe(seconds);
  }

  addBytes(protocol: string, direction: 'read' | 'write', n: number): void {
    if (n <= 0) return;
    (direction === 'read' ? this.bytesRead : this.bytesWritten).labels(protocol).inc(n);
  }

  authFailure(protocol: string, reason: string): void {
    this.authFailures.labels(protocol, reason).inc();
  }

  /** Prometheus text exposition of every metric in this registry. */
  metricsText(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
