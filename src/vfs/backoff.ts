/**
 * The one exponential backoff curve: `baseMs * 2^n`, capped at `capMs` (the exponent bounded so a
 * long outage never overflows). Callers choose their jitter: S3 request retries draw the wait
 * uniformly below it (backends/s3/retry.ts), write-back's share-wide pause between its half and all
 * of it (write-back.ts), directory-move retries wait exactly it (tree-move/moves.ts).
 */
export function backoffCeilingMs(n: number, baseMs: number, capMs: number): number {
  return Math.min(capMs, baseMs * 2 ** Math.min(n, 30));
}
