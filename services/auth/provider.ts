// The development authorization server: oidc-provider (an OpenID Certified implementation) with the
// client-credentials grant only. Partners authenticate with client_secret_basic and receive a JWT
// access token whose audience is RabbitMQ's resource server id and whose scopes are their RabbitMQ
// permissions; RabbitMQ verifies it against this server's JWKS. Discovery is served at
// /.well-known/openid-configuration, the keys at /jwks, tokens at /token.
import type { Knex } from 'knex';
import Provider, {
  errors,
  type Adapter,
  type AdapterPayload,
  type JWK,
  type KoaContextWithOIDC,
} from 'oidc-provider';
import { MAX_RECORDED_CLIENT_ID, TokenAudit } from '../domains/partner-access/audit.js';
import { CLIENTS, secretMatches, type AuthClient } from '../domains/partner-access/clients.js';

interface ProviderOptions {
  issuer: string;
  db: Knex;
  /** Private signing keys (JWK, with kid); the first signs. */
  signingKeys: JWK[];
  /** RabbitMQ's `auth_oauth2.resource_server_id`: the tokens' audience. */
  resourceServerId: string;
  accessTokenTtlSeconds: number;
  audit: TokenAudit;
  /** Behind a TLS-terminating proxy: take the client's address from X-Forwarded-For. */
  trustProxy: boolean;
  /** Random keys for oidc-provider's cookies (this grant sets none, but the provider requires them). */
  cookieKeys: string[];
}

/** Client metadata carrying the client's RabbitMQ scopes. */
const SCOPES_METADATA = 'rabbitmq_scopes';

/** The resource indicator of RabbitMQ; partners need not send it, it is the default. */
const rabbitmqResource = (resourceServerId: string): string =>
  `urn:integration-hub:${resourceServerId}`;

/**
 * Client metadata from the auth_clients table. A disabled client, or one without a secret yet, is
 * not found: the provider answers invalid_client and the audit tells the two apart.
 */
function clientAdapter(db: Knex): Adapter {
  const unsupported = async (): Promise<never> => {
    throw new Error('clients are managed in auth_clients, not through the provider');
  };
  return {
    async find(id: string): Promise<AdapterPayload | undefined> {
      // No registered id is this long or holds a NUL (which PostgreSQL refuses in a query): such an
      // id is an unknown client, answered 401, not a failed query answered 500.
      if (id.length > MAX_RECORDED_CLIENT_ID || id.includes('\u0000')) return undefined;
      const row = await db<AuthClient>(CLIENTS)
        .where({ client_id: id, active: true })
        .whereNotNull('secret_hash')
        .first();
      if (!row?.secret_hash) return undefined;
      return {
        client_id: row.client_id,
        // The stored hash; compareClientSecret below checks a presented secret against it.
        client_secret: row.secret_hash,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        // Not `scope`: that is checked against the server's OpenID scopes, which these are not.
        [SCOPES_METADATA]: row.scopes.join(' '),
      };
    },
    upsert: unsupported,
    findByUid: unsupported,
    findByUserCode: unsupported,
    consume: unsupported,
    destroy: unsupported,
    revokeByGrantId: unsupported,
  };
}

/**
 * Only clients are stored: JWT access tokens are not (RabbitMQ verifies them by signature), and the
 * client-credentials grant makes no sessions, grants or codes. Writing any other model is a
 * configuration mistake and fails loudly; looking one up finds nothing.
 */
function adapterFactory(db: Knex): (name: string) => Adapter {
  return (name: string) => {
    if (name === 'Client') return clientAdapter(db);
    const refuse = async (): Promise<never> => {
      throw new Error(`the authorization server stores no ${name}`);
    };
    // A look-up finds nothing, since nothing is stored: a client presenting a made-up opaque token
    // or session gets the provider's own 4xx, not a 500 from a thrown look-up.
    const none = async (): Promise<undefined> => undefined;
    return {
      upsert: refuse,
      find: none,
      findByUid: none,
      findByUserCode: none,
      consume: refuse,
      destroy: refuse,
      revokeByGrantId: refuse,
    };
  };
}

export function createProvider(o: ProviderOptions): Provider {
  const resource = rabbitmqResource(o.resourceServerId);
  const provider = new Provider(o.issuer, {
    adapter: adapterFactory(o.db),
    jwks: { keys: o.signingKeys },
    cookies: { keys: o.cookieKeys },
    scopes: [],
    // Every token here is for RabbitMQ, whose resource server sets the same lifetime.
    ttl: { ClientCredentials: o.accessTokenTtlSeconds },
    // No browser flows: nothing but the token endpoint issues anything.
    responseTypes: ['none'],
    features: {
      devInteractions: { enabled: false },
      // Tokens here are for RabbitMQ; there is no user whose info could be served.
      userinfo: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx: KoaContextWithOIDC, indicator: string, client) => {
          if (indicator !== resource) {
            throw new errors.InvalidTarget(
              `unknown resource; this server issues tokens for ${resource}`,
            );
          }
          const own = (client as unknown as Record<string, unknown>)[SCOPES_METADATA];
          const scope = typeof own === 'string' ? own : '';
          // Like Keycloak's default client scopes: a request that names no scope gets all of the
          // client's. The grant reads the requested scopes after resolving the resource, here.
          const params = ctx.oidc.params as { scope?: unknown } | undefined;
          if (params && (params.scope === undefined || params.scope === '')) params.scope = scope;
          return {
            scope,
            audience: o.resourceServerId,
            accessTokenTTL: o.accessTokenTtlSeconds,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    extraClientMetadata: { properties: [SCOPES_METADATA] },
    clientBasedCORS: () => false,
    // A hashed secret would otherwise be usable as a key for HMAC algorithms; only RS256 is offered.
    enabledJWA: { clientAuthSigningAlgValues: [], idTokenSigningAlgValues: ['RS256'] },
    renderError: (ctx, out) => {
      ctx.type = 'application/json';
      ctx.body = out;
    },
  });
  provider.proxy = o.trustProxy;
  // Secrets are stored as hashes (see clients.ts); oidc-provider exposes this comparison for that.
  provider.Client.prototype.compareClientSecret = function compare(
    this: { clientSecret?: string },
    actual: string,
  ) {
    return secretMatches(this.clientSecret, actual);
  };
  o.audit.attach(provider);
  return provider;
}
