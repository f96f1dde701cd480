/**
 * Journaled directory renames on backends without atomic rename (object stores), one file per part:
 * - moves.ts   the scheduler (TreeMoves): start, run, background retries, resume at start-up, and
 *              what a move does to the VFS around it, through the TreeMoveHost the Vfs implements;
 * - record.ts  the journal record's codec (the on-disk format of a `tree_moves` row);
 * - walker.ts  the copy-then-delete walk over the backend (moveTree), and its verify mode;
 * - guard.ts   the backend layer refusing changes inside a moving tree (EBUSY), and in-flight tracking;
 * - job-pool.ts the walker's bounded job queue.
 */
export { TreeMoves, MAX_ACTIVE_MOVES, type TreeMoveHost, type TreeMoveLogger, type TreeMoveOptions, type TreeMoveReport } from './moves.ts';
export { TREE_MOVE_RECORD_MAX_BYTES, decodeTreeMove, encodeTreeMove, type TreeMoveRecord } from './record.ts';
export { moveTree, type MoveTreeOptions, type MoveTreeResult } from './walker.ts';
export { TreeMoveGuard } from './guard.ts';
