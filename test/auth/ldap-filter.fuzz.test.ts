/**
 * Property test of LDAP filter templates (src/auth/ldap-filter.ts): whatever a login name holds,
 * the filled filter parses (with ldapts's own parser, the one that encodes it for the wire) into
 * exactly the template's structure, with the name as the literal value of the equality assertion.
 * A value that could close a parenthesis, start a substring match or smuggle a `\XX` escape would
 * change the parsed structure or value.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { runs } from '../setup/fuzz-seed.ts';
import { AndFilter, EqualityFilter, FilterParser, OrFilter } from 'ldapts';
import { fillFilter } from '../../src/auth/ldap-filter.ts';

const RUNS = 1000;
// Heavy on the characters that matter, plus anything at all (NUL, non-ASCII, lone surrogates are not
// login names: the directory code refuses names that are not well-formed).
const name = fc.oneof(
  fc.string({ unit: fc.constantFrom('*', '(', ')', '\\', '\0', '=', '&', '|', '!', 'a', '2', 'f', '{', '}', 'é') , maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
);

function valueOf(f: unknown): string {
  expect(f).toBeInstanceOf(EqualityFilter);
  const v = (f as EqualityFilter).value;
  return Buffer.isBuffer(v) ? v.toString('utf8') : v;
}

describe('LDAP filter templates (RFC 4515 escaping)', () => {
  it('(uid={user}) parses to one equality assertion whose value is the name, for any name', () => {
    fc.assert(
      fc.property(name, (n) => {
        const f = FilterParser.parseString(fillFilter('(uid={user})', { user: n }));
        expect((f as EqualityFilter).attribute).toBe('uid');
        expect(valueOf(f)).toBe(n);
      }),
      { numRuns: runs(RUNS) },
    );
  });

  it('the AD preset keeps its shape and both values, and {dn}/{user} are filled once each', () => {
    fc.assert(
      fc.property(name, name, (n, dn) => {
        const f = FilterParser.parseString(fillFilter('(&(objectClass=user)(|(sAMAccountName={user})(userPrincipalName={user}))(member={dn}))', { user: n, dn }));
        expect(f).toBeInstanceOf(AndFilter);
        const [cls, or, member] = (f as AndFilter).filters;
        expect(valueOf(cls)).toBe('user');
        expect(or).toBeInstanceOf(OrFilter);
        expect((or as OrFilter).filters.map(valueOf)).toEqual([n, n]);
        expect(valueOf(member)).toBe(dn);
      }),
      { numRuns: runs(RUNS) },
    );
  });
});
