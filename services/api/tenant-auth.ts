// Tenant authentication for the REST routes: a preHandler that verifies the bearer JWT and puts
// the principal on the request. A route without it is not a tenant route.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { bearerToken, type Authenticator, type Principal } from '../core/auth/tenant-jwt.js';
import { ApiError } from '../core/http.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

export function requireTenant(auth: Authenticator) {
  return async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const token = bearerToken(req.headers);
    if (!token) throw new ApiError(401, 'missing_token', 'Send the tenant access token as "Authorization: Bearer <token>".');
    req.principal = await auth.verify(token);
  };
}

/** The authenticated tenant of a request that passed `requireTenant`. */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new ApiError(401, 'missing_token', 'This route needs a tenant access token.');
  return req.principal;
}
