/**
 * The admin endpoint's bearer token for operations that change state (cache refresh). It is derived
 * from the server secret (auth.secretKey or <stateDir>/secret.key), so whoever can read the state
 * directory — the operator running `portico cache refresh` on the same host — can call them, and
 * nobody who can merely reach the admin port can. Read-only endpoints (/health, /ready, /metrics)
 * stay open for probes and scrapers.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export function adminToken(secret: string): string {
  return createHmac('sha256', secret).update('portico-admin-api-v1').digest('base64url');
}

/** Constant-time check of an `Authorization: Bearer …` header. */
export function checkBearer(header: string | undefined, expected: string): boolean {
  const m = /^Bearer ([A-Za-z0-9_-]{1,128})$/.exec(header ?? '');
  if (!m) return false;
  const got = Buffer.from(m[1]!);
  const want = Buffer.from(expected);
  return got.length === want.length && timingSafeEqual(got, want);
}
