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
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';

/** 100 µs .. 10 s: a cached stat is ~100 µs, an S3 multipart commit can take seconds. */
export const DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
const BUCKET_LABELS = [...DURATION_BUCKETS.map(String), '+Inf'];

/**
 * Period of the event-loop delay monitor behind the default `nodejs_eventloop_lag_*` gauges (ms).
 * prom-client's default, 10 ms, is a libuv timer that wakes the event loop 100 times a second
 * whatever the gateway is doing: measured on an idle gateway (2-core VM, load ~10, 10 s, all
 * threads): 784-844 voluntary context switches and 67-135 ms of CPU at 10 ms, 96 and 6.5 ms at
 * 100 ms. The gauges lose nothing that matters: the monitor records how late each tick fires, so a
 * stall delays the next tick by its length at either period (test/server/metrics-defaults.test.ts
 * blocks the loop and finds the stall in the max); there are only fewer samples behind the
 * percentiles of a quiet loop.
 */
export const EVENT_LOOP_MONITOR_MS = 100;

/**
 * Accumulators for one (protocol|backend, op) pair: outcome counts and a latency histogram.
 *
 * Why not prom-client's Counter/Histogram on the hot path: every `inc`/`observe` there builds a
 * label object and a hash string, ~1 µs and several allocations per call, which is more than a
 * cached backend stat costs. Here a call is a few additions on numbers held by a long-lived object;
 * the registry turns them into exposition text only when /metrics is scraped.
 */
export class OpStats {
  ok = 0;
  /** Non-ok outcomes by VfsError code. */
  readonly failures = new Map<string, number>();
  count = 0;
  sum = 0;
  /** Per-bucket (non-cumulative) counts; the last slot is +Inf. */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);

  /** `status` is 'ok' or a VfsError code. */
  record(status: string, seconds: number): void {
    if (status === 'ok') this.ok++;
    else this.failures.set(status, (this.failures.get(status) ?? 0) + 1);
    this.observe(seconds);
  }

  recordOk(seconds: number): void {
    this.ok++;
    this.observe(seconds);
  }

  private observe(seconds: number): void {
    this.count++;
    this.sum += seconds;
    let i = 0;
    // Prometheus buckets are `le` (<=) upper bounds.
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
    this.buckets[i]!++;
  }
}

interface MetricValue {
  labels: Record<string, string>;
  value: number;
  metricName?: string;
}

/**
 * A family of OpStats keyed by two labels (protocol/backend and op), exposed as a counter with a
 * status label, a histogram, and optionally an errors-only counter with a code label.
 */
class OpFamily {
  private readonly byKey = new Map<string, Map<string, OpStats>>();

  constructor(
    registry: Registry,
    keyLabel: string,
    names: { total: string; totalHelp: string; duration: string; durationHelp: string; errors?: string; errorsHelp?: string },
  ) {
    const custom = (name: string, help: string, type: 'counter' | 'histogram', values: () => MetricValue[]): void => {
      const metric = {
        name,
        help,
        type,
        aggregator: 'sum',
        get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
        reset: () => this.byKey.clear(),
      };
      registry.registerMetric(metric as unknown as Metric);
    };
    custom(names.total, names.totalHelp, 'counter', () => {
      const out: MetricValue[] = [];
      this.each((key, op, s) => {
        if (s.ok > 0) out.push({ labels: { [keyLabel]: key, op, status: 'ok' }, value: s.ok });
        for (const [code, n] of s.failures) out.push({ labels: { [keyLabel]: key, op, status: code }, value: n });
      });
      return out;
    });
    if (names.errors !== undefined) {
      custom(names.errors, names.errorsHelp ?? '', 'counter', () => {
        const out: MetricValue[] = [];
        this.each((key, op, s) => {
          for (const [code, n] of s.failures) out.push({ labels: { [keyLabel]: key, op, code }, value: n });
        });
        return out;
      });
    }
    const duration = names.duration;
    custom(duration, names.durationHelp, 'histogram', () => {
      const out: MetricValue[] = [];
      this.each((key, op, s) => {
        let acc = 0;
        for (let i = 0; i < BUCKET_LABELS.length; i++) {
          acc += s.buckets[i]!;
          out.push({ metricName: `${duration}_bucket`, labels: { le: BUCKET_LABELS[i]!, [keyLabel]: key, op }, value: acc });
        }
        out.push({ metricName: `${duration}_sum`, labels: { [keyLabel]: key, op }, value: s.sum });
        out.push({ metricName: `${duration}_count`, labels: { [keyLabel]: key, op }, value: s.count });
      });
      return out;
    });
  }

  /** The accumulator for (key, op), created on first use; callers on hot paths keep the reference. */
  get(key: string, op: string): OpStats {
    let ops = this.byKey.get(key);
    if (!ops) this.byKey.set(key, (ops = new Map()));
    let s = ops.get(op);
    if (!s) ops.set(op, (s = new OpStats()));
    return s;
  }

  private each(fn: (key: string, op: string, s: OpStats) => void): void {
    for (const [key, ops] of this.byKey) for (const [op, s] of ops) if (s.count > 0) fn(key, op, s);
  }

}

export interface MetricsOptions {
  /** Process metrics (CPU, memory, event loop lag, GC). Default true. */
  defaultMetrics?: boolean;
}

export class Metrics {
  readonly registry: Registry;

  /** portico_requests_total + portico_request_duration_seconds, by protocol and op. */
  private readonly requests: OpFamily;
  readonly bytesRead: Counter<'protocol'>;
  readonly bytesWritten: Counter<'protocol'>;
  /**
   * Hot-path totals behind bytesRead, bytesWritten and portico_sessions_open, by protocol: plain
   * numbers (a Map lookup and an addition per call), handed to prom-client only when /metrics is
   * scraped (the metrics' collect()). prom-client's labelled inc/dec validates and hashes its label
   * object on every call, and a WebDAV GET made three of them (a session opened and ended, bytes).
   */
  private readonly readTotals = new Map<string, number>();
  private readonly writeTotals = new Map<string, number>();
  private readonly sessionTotals = new Map<string, number>();
  /** Open sessions by protocol (portico_sessions_open). */
  readonly sessionsOpen = {
    inc: (labels: { protocol: string }): void => void this.sessionTotals.set(labels.protocol, (this.sessionTotals.get(labels.protocol) ?? 0) + 1),
    dec: (labels: { protocol: string }): void => void this.sessionTotals.set(labels.protocol, (this.sessionTotals.get(labels.protocol) ?? 0) - 1),
  };
  readonly connectionsOpen: Gauge<'protocol'>;

  /** portico_backend_requests_total, portico_backend_errors_total, portico_backend_request_duration_seconds. */
  private readonly backendOps: OpFamily;

  readonly cacheHits: Counter<'cache'>;
  readonly cacheMisses: Counter<'cache'>;
  readonly cacheEvictions: Counter<'cache'>;
  readonly cacheBytes: Gauge<'cache'>;

  readonly authFailures: Counter<'protocol' | 'reason'>;

  /**
   * portico_s3_requests_total{backend,op,status} and portico_s3_request_duration_seconds{backend,op}:
   * every HTTP request an S3 backend sends (each retry counts), `status` being 'ok', the HTTP status of
   * a failure, or 'network' / 'timeout' when there was no response.
   */
  private readonly s3Ops: OpFamily;
  /** S3 payload bytes by direction ('in' = downloaded, 'out' = uploaded). */
  readonly s3Bytes: Counter<'backend' | 'direction'>;
  readonly s3Retries: Counter<'backend' | 'op' | 'reason'>;
  /** 0 closed, 1 half-open, 2 open. */
  readonly s3Circuit: Gauge<'backend'>;
  /** Reads served by a block that read-ahead had fetched before it was asked for. */
  readonly readAheadHits: Counter<'backend'>;
  /** Cache entries found corrupt (checksum mismatch) and dropped. */
  readonly cacheCorruptions: Counter<'cache'>;

  constructor(options: MetricsOptions = {}) {
    this.registry = new Registry();
    const registers = [this.registry];
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_MONITOR_MS });

    this.requests = new OpFamily(this.registry, 'protocol', {
      total: 'portico_requests_total',
      totalHelp: 'Protocol requests handled, by outcome (ok or VfsError code)',
      duration: 'portico_request_duration_seconds',
      durationHelp: 'Protocol request latency',
    });
    const totalsOf = (totals: Map<string, number>) =>
      function (this: Counter<'protocol'>): void {
        this.reset();
        for (const [protocol, n] of totals) if (n > 0) this.inc({ protocol }, n);
      };
    this.bytesRead = new Counter({
      name: 'portico_bytes_read_total',
      help: 'File content bytes sent to clients',
      labelNames: ['protocol'],
      registers,
      collect: totalsOf(this.readTotals),
    });
    this.bytesWritten = new Counter({
      name: 'portico_bytes_written_total',
      help: 'File content bytes received from clients',
      labelNames: ['protocol'],
      registers,
      collect: totalsOf(this.writeTotals),
    });
    const sessionTotals = this.sessionTotals;
    new Gauge({
      name: 'portico_sessions_open',
      help: 'Authenticated sessions currently open',
      labelNames: ['protocol'],
      registers,
      collect(this: Gauge<'protocol'>) {
        for (const [protocol, n] of sessionTotals) this.set({ protocol }, n);
      },
    });
    this.connectionsOpen = new Gauge({
      name: 'portico_connections_open',
      help: 'Transport connections currently open',
      labelNames: ['protocol'],
      registers,
    });
    this.backendOps = new OpFamily(this.registry, 'backend', {
      total: 'portico_backend_requests_total',
      totalHelp: 'Backend calls, by outcome (ok or VfsError code)',
      errors: 'portico_backend_errors_total',
      errorsHelp: 'Backend calls that failed, by VfsError code',
      duration: 'portico_backend_request_duration_seconds',
      durationHelp: 'Backend call latency',
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
    this.s3Ops = new OpFamily(this.registry, 'backend', {
      total: 'portico_s3_requests_total',
      totalHelp: 'S3 HTTP requests sent, by operation and outcome (ok, HTTP status of a failure, network, timeout)',
      duration: 'portico_s3_request_duration_seconds',
      durationHelp: 'S3 request latency, including reading the response body',
    });
    this.s3Bytes = new Counter({ name: 'portico_s3_bytes_total', help: 'S3 payload bytes, by direction (in/out)', labelNames: ['backend', 'direction'], registers });
    this.s3Retries = new Counter({ name: 'portico_s3_retries_total', help: 'S3 request retries, by operation and failure', labelNames: ['backend', 'op', 'reason'], registers });
    this.s3Circuit = new Gauge({ name: 'portico_s3_circuit_state', help: 'S3 endpoint circuit breaker: 0 closed, 1 half-open, 2 open', labelNames: ['backend'], registers });
    this.readAheadHits = new Counter({ name: 'portico_readahead_hits_total', help: 'Reads served by a read-ahead block', labelNames: ['backend'], registers });
    this.cacheCorruptions = new Counter({ name: 'portico_cache_corruptions_total', help: 'Cache entries that failed their checksum and were dropped', labelNames: ['cache'], registers });
  }

  /** The accumulator for one S3 backend and operation (record() with 'ok', an HTTP status, 'network' or 'timeout'). */
  s3Stats(backend: string, op: string): OpStats {
    return this.s3Ops.get(backend, op);
  }

  /** One finished protocol request. `status` is 'ok' or a VfsError code. */
  observeRequest(protocol: string, op: string, status: string, seconds: number): void {
    this.requests.get(protocol, op).record(status, seconds);
  }

  /** The accumulator behind observeRequest, for a protocol that wants to keep it per op. */
  requestStats(protocol: string, op: string): OpStats {
    return this.requests.get(protocol, op);
  }

  /** The accumulator for one backend (share) and method; see instrumented-backend.ts. */
  backendStats(backend: string, op: string): OpStats {
    return this.backendOps.get(backend, op);
  }

  /** One backend call outside the instrumented wrapper (e.g. a retried S3 request). */
  observeBackend(backend: string, op: string, status: string, seconds: number): void {
    this.backendOps.get(backend, op).record(status, seconds);
  }

  addBytes(protocol: string, direction: 'read' | 'write', n: number): void {
    if (n <= 0) return;
    const totals = direction === 'read' ? this.readTotals : this.writeTotals;
    totals.set(protocol, (totals.get(protocol) ?? 0) + n);
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
