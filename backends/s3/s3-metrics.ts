/**
 * The S3 backend's instruments: forwards to the process `Metrics` when one was given, and always
 * keeps plain counters of its own (requests per operation, bytes, cache tiers), which tests and the
 * benchmark read without scraping Prometheus text.
 */
import type { Counter, Gauge } from 'prom-client';
import type { Metrics, OpStats } from '../../src/metrics/metrics.ts';
import type { CircuitState } from './retry.ts';

export type CacheTier = 'memory' | 'disk' | 'meta';

export interface LocalCounters {
  /** Requests by S3 operation name (every attempt counts). */
  requests: Map<string, number>;
  retries: number;
  bytesIn: number;
  bytesOut: number;
  hits: Record<CacheTier, number>;
  misses: Record<CacheTier, number>;
  evictions: Record<CacheTier, number>;
  corruptions: number;
  readAheadHits: number;
}

const CIRCUIT_VALUE: Record<CircuitState, number> = { closed: 0, 'half-open': 1, open: 2 };

export class S3Meters {
  readonly label: string;
  readonly local: LocalCounters = {
    requests: new Map(),
    retries: 0,
    bytesIn: 0,
    bytesOut: 0,
    hits: { memory: 0, disk: 0, meta: 0 },
    misses: { memory: 0, disk: 0, meta: 0 },
    evictions: { memory: 0, disk: 0, meta: 0 },
    corruptions: 0,
    readAheadHits: 0,
  };
  private readonly metrics: Metrics | undefined;
  private readonly ops = new Map<string, OpStats>();
  private readonly bytesInC: Counter.Internal | undefined;
  private readonly bytesOutC: Counter.Internal | undefined;
  private readonly circuitG: Gauge.Internal<string> | undefined;
  private readonly readAheadC: Counter.Internal | undefined;
  private readonly tierHits = new Map<CacheTier, Counter.Internal>();
  private readonly tierMisses = new Map<CacheTier, Counter.Internal>();
  private readonly tierEvictions = new Map<CacheTier, Counter.Internal>();
  private readonly tierBytes = new Map<CacheTier, Gauge.Internal<string>>();

  constructor(metrics: Metrics | undefined, label: string) {
    this.metrics = metrics;
    this.label = label;
    if (metrics === undefined) return;
    this.bytesInC = metrics.s3Bytes.labels(label, 'in');
    this.bytesOutC = metrics.s3Bytes.labels(label, 'out');
    this.circuitG = metrics.s3Circuit.labels(label);
    this.circuitG.set(0);
    this.readAheadC = metrics.readAheadHits.labels(label);
    for (const tier of ['memory', 'disk', 'meta'] as const) {
      const cache = this.cacheName(tier);
      this.tierHits.set(tier, metrics.cacheHits.labels(cache));
      this.tierMisses.set(tier, metrics.cacheMisses.labels(cache));
      this.tierEvictions.set(tier, metrics.cacheEvictions.labels(cache));
      this.tierBytes.set(tier, metrics.cacheBytes.labels(cache));
    }
  }

  /** `cache` label of a tier: one series per share and tier. */
  cacheName(tier: CacheTier): string {
    return `${this.label}/s3-${tier === 'meta' ? 'meta' : `block-${tier}`}`;
  }

  request(op: string, status: string, seconds: number): void {
    this.local.requests.set(op, (this.local.requests.get(op) ?? 0) + 1);
    if (this.metrics === undefined) return;
    let s = this.ops.get(op);
    if (s === undefined) this.ops.set(op, (s = this.metrics.s3Stats(this.label, op)));
    s.record(status, seconds);
  }

  retry(op: string, reason: string): void {
    this.local.retries++;
    this.metrics?.s3Retries.labels(this.label, op, reason).inc();
  }

  bytes(direction: 'in' | 'out', n: number): void {
    if (n <= 0) return;
    if (direction === 'in') {
      this.local.bytesIn += n;
      this.bytesInC?.inc(n);
    } else {
      this.local.bytesOut += n;
      this.bytesOutC?.inc(n);
    }
  }

  circuit(state: CircuitState): void {
    this.circuitG?.set(CIRCUIT_VALUE[state]);
  }

  hit(tier: CacheTier): void {
    this.local.hits[tier]++;
    this.tierHits.get(tier)?.inc();
  }

  miss(tier: CacheTier): void {
    this.local.misses[tier]++;
    this.tierMisses.get(tier)?.inc();
  }

  eviction(tier: CacheTier): void {
    this.local.evictions[tier]++;
    this.tierEvictions.get(tier)?.inc();
  }

  cacheBytes(tier: CacheTier, n: number): void {
    this.tierBytes.get(tier)?.set(n);
  }

  corruption(tier: CacheTier): void {
    this.local.corruptions++;
    this.metrics?.cacheCorruptions.labels(this.cacheName(tier)).inc();
  }

  readAheadHit(): void {
    this.local.readAheadHits++;
    this.readAheadC?.inc();
  }

  /** Total requests sent (all operations). */
  totalRequests(): number {
    let n = 0;
    for (const v of this.local.requests.values()) n += v;
    return n;
  }
}
