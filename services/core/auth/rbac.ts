// Role-based access per endpoint, deny by default: a route names the permission it needs in its
// config, a table says which roles hold which permission, and a route without a permission is
// refused. Callers authenticate with a tenant JWT (Authorization: Bearer) or an API key (X-API-Key).
// Staff roles come from API keys or from the client roles of our own audience in the JWT, never from
// claims any realm client can carry (see clientRolesOf in tenant-jwt.ts).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Knex } from 'knex';
import { ApiError } from '../http.js';
import { verifyApiKey } from './api-keys.js';
import { bearerToken, type Authenticator } from './tenant-jwt.js';

/** Every tenant token is a tenant's: the role is implied by the token kind, not read from claims. */
const TENANT_ROLE = 'tenant';

type Caller =
  | { kind: 'tenant'; tenantId: string; roles: string[] }
  | { kind: 'api_key'; keyId: string; name: string; roles: string[] };

export type PermissionTable<P extends string> = Readonly<Record<P, readonly string[]>>;

/** Pure: whether any of the caller's roles holds the permission. Unknown permissions hold for no one. */
function allows<P extends string>(
  table: PermissionTable<P>,
  permission: P | undefined,
  roles: readonly string[],
): boolean {
  if (!permission) return false;
  const allowed = table[permission];
  return Array.isArray(allowed) && roles.some((r) => allowed.includes(r));
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The permission a route requires; routes of an RBAC-guarded prefix without one are refused. */
    permission?: string;
  }
  interface FastifyRequest {
    caller?: Caller;
  }
}

interface RbacOptions<P extends string> {
  /** Routes whose URL starts with this prefix are guarded. */
  prefix: string;
  table: PermissionTable<P>;
  db: Knex;
  authenticator: Authenticator;
}

async function authenticate(req: FastifyRequest, o: RbacOptions<string>): Promise<Caller> {
  const key = req.headers['x-api-key'];
  if (typeof key === 'string' && key.length > 0) return verifyApiKey(o.db, key);
  const token = bearerToken(req.headers);
  if (!token) {
    throw new ApiError(
      401,
      'unauthenticated',
      'Send a tenant access token (Authorization: Bearer) or an API key (X-API-Key).',
    );
  }
  const p = await o.authenticator.verify(token);
  return {
    kind: 'tenant',
    tenantId: p.tenantId,
    roles: [TENANT_ROLE, ...p.roles.filter((r) => r !== TENANT_ROLE)],
  };
}

/** Adds authentication and the permission check to every route under `prefix`. */
export function guardRoutes<P extends string>(app: FastifyInstance, o: RbacOptions<P>): void {
  app.addHook('onRequest', async (req) => {
    const url = req.routeOptions.url;
    if (!url || !url.startsWith(o.prefix)) return;
    const caller = await authenticate(req, o as RbacOptions<string>);
    req.caller = caller;
    const permission = req.routeOptions.config.permission as P | undefined;
    if (!allows(o.table, permission, caller.roles)) {
      throw new ApiError(
        403,
        'forbidden',
        `Your roles (${caller.roles.join(', ') || 'none'}) do not allow this operation.`,
        {
          required: permission ?? 'none (route not open to anyone)',
        },
      );
    }
  });
}

/** The caller of a guarded route (set by guardRoutes). */
export function callerOf(req: FastifyRequest): Caller {
  if (!req.caller) throw new ApiError(401, 'unauthenticated', 'Authentication is required.');
  return req.caller;
}

/** The tenant calling a guarded route; machine clients are refused (403 `tenant_only`). */
export function tenantOf(req: FastifyRequest, what = 'This operation'): string {
  const caller = callerOf(req);
  if (caller.kind !== 'tenant') {
    throw new ApiError(
      403,
      'tenant_only',
      `${what} is for tenants only; use a tenant access token.`,
    );
  }
  return caller.tenantId;
}

/** Route config naming the permission, typed by the table's permissions so a misspelt one does not compile. */
export function permissionConfig<P extends string>(): (permission: P) => {
  config: { permission: P };
} {
  return (permission) => ({ config: { permission } });
}
