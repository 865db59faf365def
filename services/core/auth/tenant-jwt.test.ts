// Where a tenant token's staff roles come from: only the client roles of our own audience, whatever
// else the token carries.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { clientRolesOf } from './tenant-jwt.js';

const AUD = 'integration-hub';

describe('clientRolesOf', () => {
  test('reads resource_access[<audience>].roles and nothing else', () => {
    expect(
      clientRolesOf(
        {
          roles: ['kitchen-admin'],
          realm_access: { roles: ['kitchen-admin'] },
          resource_access: {
            [AUD]: { roles: ['kitchen-operator', 7, null] },
            other: { roles: ['kitchen-admin'] },
          },
        },
        AUD,
      ),
    ).toEqual(['kitchen-operator']);
  });

  test('a token without our client has no staff roles, whatever its other claims or shapes', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), fc.anything()),
        fc.anything(),
        fc.anything(),
        (access, roles, realm) => {
          const foreign = Object.fromEntries(Object.entries(access).filter(([k]) => k !== AUD));
          expect(
            clientRolesOf(
              { roles, realm_access: realm, resource_access: foreign } as Record<string, unknown>,
              AUD,
            ),
          ).toEqual([]);
        },
      ),
    );
  });

  test('malformed resource_access never throws and yields only strings', () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        const roles = clientRolesOf({ resource_access: value } as Record<string, unknown>, AUD);
        expect(roles.every((r) => typeof r === 'string')).toBe(true);
        const nested = clientRolesOf(
          { resource_access: { [AUD]: value } } as Record<string, unknown>,
          AUD,
        );
        expect(nested.every((r) => typeof r === 'string')).toBe(true);
      }),
    );
  });
});
