/**
 * Optional S3 APIs a store may lack, detected from its answers and switched off once.
 *
 * S3-compatible stores implement S3 to different depths: stock s3rver answers ListMultipartUploads
 * and UploadPartCopy with 501 NotImplemented and AbortMultipartUpload with 405 MethodNotAllowed;
 * older AWS answered a conditional PUT (If-None-Match) with 501; Ceph, MinIO, Garage, SeaweedFS
 * each lack a few others. One defect counts as a missing feature too: a CopyObject onto an
 * existing key that reports the key's previous ETag for new content (stock s3rver keeps the old
 * MD5 when metadata is replaced), found by s3-backend.ts's copy(). Such an answer is about a feature, never about the endpoint's health
 * (retry.ts keeps it away from the circuit breaker). The first one per feature disables the feature
 * for this backend with one warning naming the store's answer and what degrades, and sets
 * `portico_s3_feature_available{share,feature}` to 0 (1 until then). What depends on a feature
 * then degrades as documented in backends/s3/README.md ("S3-compatible stores: optional features
 * and differences") instead of failing: the request is not sent again.
 */
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../src/log/logger.ts';
import type { Metrics } from '../../src/metrics/metrics.ts';
import { httpStatusOf } from './retry.ts';

export const STORE_FEATURES = ['multipartListing', 'multipartAbort', 'uploadPartCopy', 'conditionalWrites', 'copyConditions', 'copyEtags'] as const;
export type StoreFeature = (typeof STORE_FEATURES)[number];

/** What the gateway does without each feature (the log line and the README say the same). */
export const DEGRADATION: Record<StoreFeature, string> = {
  multipartListing: 'start-up recovery of orphaned multipart uploads is skipped (an AbortIncompleteMultipartUpload lifecycle rule on the bucket, if the store has one, does that job)',
  multipartAbort: 'failed or interrupted multipart uploads are left in the store (no abort is sent)',
  uploadPartCopy: 'patched writes of large files and copies above multipartCopyThreshold upload the whole object: unchanged ranges are streamed from the store through the gateway (GET + UploadPart) instead of copied inside it',
  conditionalWrites: 'exclusive creates are checked by a HEAD under a per-key lock only, without If-None-Match (a create racing another S3 client on the same name is not caught by the store)',
  copyConditions: 'server-side copies are not pinned to the source version (x-amz-copy-source-if-match is not sent)',
  copyEtags: 'a copy onto an existing object deletes that object first, so the copy gets an ETag of its own (not atomic: other S3 clients may miss the name for a moment)',
};

const UNSUPPORTED_CODES = new Set(['NotImplemented', 'NotSupported', 'XNotImplemented', 'UnsupportedOperation', 'MethodNotAllowed']);

/**
 * Whether a failed request's answer says the store lacks the API or header: 501, 405, or one of
 * the codes stores use for that. Looks through a VfsError to the SDK error it wraps.
 */
export function isUnsupportedAnswer(e: unknown): boolean {
  for (let x: unknown = e, i = 0; x !== undefined && x !== null && i < 3; x = (x as { cause?: unknown }).cause, i++) {
    const status = httpStatusOf(x);
    if (status === 501 || status === 405) return true;
    const o = x as { Code?: unknown; name?: unknown };
    if (status !== undefined && status >= 400 && (UNSUPPORTED_CODES.has(String(o.Code)) || UNSUPPORTED_CODES.has(String(o.name)))) return true;
  }
  return false;
}

function describeAnswer(e: unknown): string {
  for (let x: unknown = e, i = 0; x !== undefined && x !== null && i < 3; x = (x as { cause?: unknown }).cause, i++) {
    const status = httpStatusOf(x);
    if (status !== undefined) {
      const o = x as { Code?: unknown; name?: unknown };
      return `HTTP ${status} ${typeof o.Code === 'string' ? o.Code : String(o.name ?? '')}`.trim();
    }
  }
  return String((e as Error)?.message ?? e);
}

function featureGauge(registry: Registry): Gauge<'share' | 'feature'> {
  const name = 'portico_s3_feature_available';
  // One gauge per registry, shared by every S3 backend of the process (one series per share).
  const existing = registry.getSingleMetric(name) as Gauge<'share' | 'feature'> | undefined;
  return existing ?? new Gauge({
    name,
    help: 'Optional S3 API of the store in use: 1 available (or not yet found missing), 0 found missing and switched off',
    labelNames: ['share', 'feature'],
    registers: [registry],
  });
}

export class StoreFeatures {
  private readonly missing = new Map<StoreFeature, string>();
  private readonly gauge: Gauge<'share' | 'feature'> | undefined;
  private readonly label: string;
  private readonly logger: Logger | undefined;

  constructor(o: { label: string; metrics?: Metrics | undefined; logger?: Logger | undefined; disabled?: readonly StoreFeature[] | undefined }) {
    this.label = o.label;
    this.logger = o.logger;
    if (o.metrics !== undefined) {
      this.gauge = featureGauge(o.metrics.registry);
      for (const f of STORE_FEATURES) this.gauge.labels(this.label, f).set(1);
    }
    for (const f of o.disabled ?? []) this.disable(f, 'switched off in the share options');
  }

  has(f: StoreFeature): boolean {
    return !this.missing.has(f);
  }

  /** Features found missing, with the answer that showed it. */
  unavailable(): Map<StoreFeature, string> {
    return new Map(this.missing);
  }

  /**
   * When `e` is a store's "not implemented" answer to a request that needs `f`: switches `f` off
   * (logged and counted once) and returns true; the caller then degrades. Otherwise false.
   */
  lacks(f: StoreFeature, e: unknown): boolean {
    if (!isUnsupportedAnswer(e)) return false;
    this.disable(f, `the store answered ${describeAnswer(e)}`);
    return true;
  }

  disable(f: StoreFeature, why: string): void {
    if (this.missing.has(f)) return;
    this.missing.set(f, why);
    this.gauge?.labels(this.label, f).set(0);
    this.logger?.warn({ share: this.label, feature: f, reason: why }, `S3 store lacks ${f} (${why}): ${DEGRADATION[f]}`);
  }
}
