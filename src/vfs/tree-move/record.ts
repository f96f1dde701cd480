/**
 * The tree-move journal record: the one row a journaled directory move keeps in the metadata
 * store (`tree_moves`) from its commit to its end, so that a restart can finish it (moves.ts).
 *
 * The store never parses it; this module owns the format: versioned JSON, bounded in size,
 * validated field by field. A record that does not decode is set aside (quarantined, with the
 * reason) and logged by the scheduler; it never stops a start. The encoding is part of the state
 * directory's format: rows written by earlier versions must keep decoding.
 */
import { VfsError } from '../errors.ts';
import { isSameOrDescendant, normalizePath } from '../path.ts';
import type { FileId } from '../types.ts';

export interface TreeMoveRecord {
  v: 1;
  /** Journal row id (a UUID). */
  id: string;
  volume: string;
  /** Backend kind when the move started: a share now on another kind of storage is not touched. */
  backend: string;
  /** Backend paths (as stored), normalised, never '/', neither inside the other. */
  from: string;
  to: string;
  /** The moved directory's file id (already at `to` in the id store). */
  dirId: FileId;
  /** Mode of the source directory (for the destination when it must be created). */
  mode?: number;
  /** ms since the epoch. */
  created: number;
}

/** Largest encoded record: two 4096-byte paths, JSON-escaped, plus a few short fields. */
export const TREE_MOVE_RECORD_MAX_BYTES = 32 * 1024;
/** Longest name any backend declares (S3: 1024 bytes); the volume enforces its own, smaller limits. */
const RECORD_MAX_NAME_BYTES = 1024;
const ID_RE = /^[A-Za-z0-9-]{1,64}$/;
const FILE_ID_RE = /^[1-9][0-9]{0,18}$/;
const MAX_FILE_ID = (1n << 63n) - 1n;

export function encodeTreeMove(r: TreeMoveRecord): string {
  const out: Record<string, unknown> = { v: 1, id: r.id, volume: r.volume, backend: r.backend, from: r.from, to: r.to, dirId: r.dirId.toString(), created: r.created };
  if (r.mode !== undefined) out.mode = r.mode;
  const text = JSON.stringify(out);
  if (Buffer.byteLength(text, 'utf8') > TREE_MOVE_RECORD_MAX_BYTES) throw new VfsError('ENAMETOOLONG', 'tree move record too large');
  return text;
}

/** Decodes and validates a stored record; throws VfsError('EINVAL') saying what is wrong. */
export function decodeTreeMove(text: unknown, expectVolume: string): TreeMoveRecord {
  const bad = (why: string): never => {
    throw new VfsError('EINVAL', `bad tree move record: ${why}`);
  };
  if (typeof text !== 'string') return bad('not text');
  if (Buffer.byteLength(text, 'utf8') > TREE_MOVE_RECORD_MAX_BYTES) return bad(`longer than ${TREE_MOVE_RECORD_MAX_BYTES} bytes`);
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return bad('not JSON');
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return bad('not an object');
  const r = o as Record<string, unknown>;
  if (r.v !== 1) return bad(`unsupported version ${JSON.stringify(r.v)?.slice(0, 20)}`);
  if (typeof r.id !== 'string' || !ID_RE.test(r.id)) return bad('id');
  if (r.volume !== expectVolume) return bad('volume does not match its row');
  if (typeof r.backend !== 'string' || r.backend.length === 0 || r.backend.length > 64) return bad('backend');
  const path = (k: 'from' | 'to'): string => {
    const p = r[k];
    if (typeof p !== 'string') return bad(k);
    let n: string;
    try {
      n = normalizePath(p, RECORD_MAX_NAME_BYTES);
    } catch {
      return bad(`${k} is not a valid path`);
    }
    if (n !== p || n === '/') return bad(`${k} is not a normalised path below the root`);
    return n;
  };
  const from = path('from');
  const to = path('to');
  if (isSameOrDescendant(to, from) || isSameOrDescendant(from, to)) return bad('from and to overlap');
  if (typeof r.dirId !== 'string' || !FILE_ID_RE.test(r.dirId) || BigInt(r.dirId) > MAX_FILE_ID) return bad('dirId');
  if (r.mode !== undefined && (!Number.isInteger(r.mode) || (r.mode as number) < 0 || (r.mode as number) > 0o7777)) return bad('mode');
  if (typeof r.created !== 'number' || !Number.isFinite(r.created)) return bad('created');
  const rec: TreeMoveRecord = { v: 1, id: r.id, volume: expectVolume, backend: r.backend, from, to, dirId: BigInt(r.dirId), created: r.created };
  if (r.mode !== undefined) rec.mode = r.mode as number;
  return rec;
}
