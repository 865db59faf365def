// The development authorization server's configuration. Production runs Keycloak instead; these
// variables serve local runs (`npm start`) and the tests.
import { z } from 'zod';
import { baseEnv, databaseEnv, url } from '../core/config.js';
import { partnerScopeEnv } from '../domains/partner-access/scopes.js';

const privateJwks = z.string().transform((v, ctx) => {
  try {
    const parsed = z.object({ keys: z.array(z.record(z.unknown())).min(1) }).parse(JSON.parse(v));
    if (
      !parsed.keys.every(
        (k) => k.kty === 'RSA' && typeof k.d === 'string' && typeof k.kid === 'string',
      )
    ) {
      throw new Error('not RSA');
    }
    return parsed.keys;
  } catch {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: 'must be a JWKS {"keys":[...]} of private RSA keys, each with a kid',
    });
    return z.NEVER;
  }
});

export const authEnv = baseEnv
  .merge(databaseEnv)
  .merge(partnerScopeEnv)
  .merge(
    z.object({
      /** The issuer URL partners and RabbitMQ see (https in any shared environment). */
      AUTH_ISSUER: url(['https:', 'http:']),
      /** Private signing keys; without them a key is made at start (tokens then die with the process). */
      AUTH_SIGNING_JWKS: privateJwks.optional(),
      /** Access-token lifetime; partners refresh before it ends (RabbitMQ's update-secret). */
      AUTH_TOKEN_TTL_SECONDS: z.coerce.number().int().min(5).max(86_400).default(300),
      /** Serve HTTPS with this certificate chain and key (PEM files). */
      AUTH_TLS_CERT_FILE: z.string().min(1).optional(),
      AUTH_TLS_KEY_FILE: z.string().min(1).optional(),
      /** Behind a proxy that sets X-Forwarded-For: audit the client's address, not the proxy's. */
      AUTH_TRUST_PROXY: z
        .enum(['true', 'false'])
        .default('false')
        .transform((v) => v === 'true'),
      /** Token events older than this are deleted. */
      AUTH_AUDIT_RETENTION_DAYS: z.coerce.number().int().min(1).max(3_650).default(90),
    }),
  );
export type AuthConfig = z.infer<typeof authEnv>;
