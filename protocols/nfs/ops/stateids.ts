/** TEST_STATEID and FREE_STATEID (RFC 8881 §18.48, §18.38). */
import { NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { StateidArgs, TestStateidArgs } from '../xdr4/session41.ts';
import { fail, ok, resolveStateid, type OpContext } from '../server/context.ts';
import { freeLockState } from './lock.ts';

export function testStateid(c: OpContext, a: TestStateidArgs): OpResult {
  const statuses = a.stateids.map((s) => {
    const r = resolveStateid(c, s);
    if (r.kind === 'error') return r.status;
    if (r.kind === 'special') return NFS4ERR.BAD_STATEID;
    return NFS4ERR.OK;
  });
  return ok(OP.TEST_STATEID, { statuses });
}

export async function freeStateid(c: OpContext, a: StateidArgs): Promise<OpResult> {
  const r = resolveStateid(c, { seqid: 0, other: a.stateid.other });
  if (r.kind === 'error') return fail(OP.FREE_STATEID, r.status);
  if (r.kind === 'special') return fail(OP.FREE_STATEID, NFS4ERR.BAD_STATEID);
  // An open is freed by CLOSE (§18.38.3: LOCKS_HELD for a state still in use).
  if (r.kind === 'open') return fail(OP.FREE_STATEID, NFS4ERR.LOCKS_HELD);
  await freeLockState(c, r.lock);
  return ok(OP.FREE_STATEID, null);
}
