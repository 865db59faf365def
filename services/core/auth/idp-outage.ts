// An identity provider that cannot hand out its signing keys (JWKS fetch timed out, refused, or
// answered 5xx or garbage) is an outage on its side, not a bad token: callers get 503
// `identity_provider_unavailable` with Retry-After, so apps retry instead of signing the user out.
import { errors as joseErrors, type JWTVerifyGetKey } from 'jose';
import { type ApiError, unavailable } from '../http.js';

/** jose refetches the JWKS on the next request, so a retry after the provider is back succeeds. */
function identityProviderUnavailable(): ApiError {
  return unavailable(
    'identity_provider_unavailable',
    'The identity provider does not answer, so the access token cannot be checked; retry shortly.',
  );
}

/**
 * Key lookups that fail because of the token (it names a key or algorithm the provider does not
 * publish) stay token errors (401); every other failure to get a key is the provider's.
 */
function isTokenFault(err: unknown): boolean {
  return (
    err instanceof joseErrors.JWKSNoMatchingKey ||
    err instanceof joseErrors.JWKSMultipleMatchingKeys ||
    err instanceof joseErrors.JOSENotSupported ||
    err instanceof joseErrors.JOSEAlgNotAllowed
  );
}

/**
 * At most one log line per this many ms during an outage: every request that needs a key fails
 * while the provider is down, and one line per request would flood the log.
 */
const LOG_EVERY_MS = 10_000;

/**
 * Wraps a remote JWKS so that its fetch failures surface as `identity_provider_unavailable`, and
 * tells `onOutage` (throttled) with the cause and how many failures it stands for.
 */
export function identityProviderKeys(
  jwks: JWTVerifyGetKey,
  onOutage?: (err: unknown, failures: number) => void,
): JWTVerifyGetKey {
  let lastLogged = 0;
  let failures = 0;
  return async (header, token) => {
    try {
      return await jwks(header, token);
    } catch (thrown) {
      if (isTokenFault(thrown)) throw thrown;
      failures++;
      if (onOutage && Date.now() - lastLogged >= LOG_EVERY_MS) {
        lastLogged = Date.now();
        onOutage(thrown, failures);
        failures = 0;
      }
      throw Object.assign(identityProviderUnavailable(), { cause: thrown });
    }
  };
}
