/**
 * Listing helpers shared by backends that page a sorted in-memory name array.
 */

/** Index of the first name strictly greater than `after` (names sorted with JS `<`), by binary search. */
export function firstAfter(names: readonly string[], after: string | undefined): number {
  if (after === undefined) return 0;
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((names[mid] as string) <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
