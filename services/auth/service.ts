// The development authorization server as a service: oidc-provider mounted on the shared HTTP
// scaffold (/healthz, /readyz, /metrics), optionally over HTTPS, with the audit's retention sweep.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { exportJWK, generateKeyPair } from 'jose';
import type { Knex } from 'knex';
import type { default as Provider, JWK } from 'oidc-provider';
import { ConfigError, type HttpServerConfig } from '../core/config.js';
import { pingDb } from '../core/db.js';
import { toError } from '../core/errors.js';
import { createHttpServer } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { TokenAudit } from '../domains/partner-access/audit.js';
import { AuthClientStore } from '../domains/partner-access/clients.js';
import type { AuthConfig } from './config.js';
import { authMetrics } from './metrics.js';
import { createProvider } from './provider.js';

type AuthServiceConfig = Pick<
  AuthConfig,
  | 'AUTH_ISSUER'
  | 'AUTH_SIGNING_JWKS'
  | 'AUTH_TOKEN_TTL_SECONDS'
  | 'AUTH_TLS_CERT_FILE'
  | 'AUTH_TLS_KEY_FILE'
  | 'AUTH_TRUST_PROXY'
  | 'AUTH_AUDIT_RETENTION_DAYS'
  | 'RABBITMQ_RESOURCE_SERVER_ID'
  | 'RABBITMQ_PARTNER_VHOST'
> &
  Partial<HttpServerConfig>;

export interface AuthService {
  http: FastifyInstance;
  provider: Provider;
  clients: AuthClientStore;
  audit: TokenAudit;
  stop(): Promise<void>;
}

const RETENTION_SWEEP_MS = 3_600_000;

/** A signing key made at start, for local runs without AUTH_SIGNING_JWKS. */
async function generateSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: `dev-${randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' } as JWK;
}

export async function createAuthService(d: {
  config: AuthServiceConfig;
  db: Knex;
  logger: Logger;
  metrics: Metrics;
}): Promise<AuthService> {
  const { config, db, logger, metrics } = d;
  if (!config.AUTH_TLS_CERT_FILE !== !config.AUTH_TLS_KEY_FILE) {
    throw new ConfigError(['AUTH_TLS_CERT_FILE and AUTH_TLS_KEY_FILE must be set together']);
  }
  const signingKeys = (config.AUTH_SIGNING_JWKS as JWK[] | undefined) ?? [
    await generateSigningKey(),
  ];
  if (!config.AUTH_SIGNING_JWKS) {
    logger.warn(
      'AUTH_SIGNING_JWKS is not set: signing with a key made at start; tokens end with this process',
    );
  }
  const clients = new AuthClientStore(db, {
    vhost: config.RABBITMQ_PARTNER_VHOST,
    resourceServerId: config.RABBITMQ_RESOURCE_SERVER_ID,
  });
  const audit = new TokenAudit(
    db,
    authMetrics(metrics.registry).tokenRequests,
    logger.child({ component: 'token-audit' }),
  );
  const provider = createProvider({
    issuer: config.AUTH_ISSUER,
    db,
    signingKeys,
    audit,
    resourceServerId: config.RABBITMQ_RESOURCE_SERVER_ID,
    accessTokenTtlSeconds: config.AUTH_TOKEN_TTL_SECONDS,
    trustProxy: config.AUTH_TRUST_PROXY,
    cookieKeys: [randomBytes(32).toString('base64url')],
  });
  const tls =
    config.AUTH_TLS_CERT_FILE && config.AUTH_TLS_KEY_FILE
      ? {
          cert: await readFile(config.AUTH_TLS_CERT_FILE, 'utf8'),
          key: await readFile(config.AUTH_TLS_KEY_FILE, 'utf8'),
        }
      : undefined;
  const http = createHttpServer({
    logger,
    metrics,
    tls,
    limits: config,
    db,
    readiness: [{ name: 'postgres', check: () => pingDb(db) }],
  });
  // The provider reads its own request bodies: leave them unread for it.
  http.removeAllContentTypeParsers();
  http.addContentTypeParser('*', (_req, _payload, done) => done(null));
  const handle = provider.callback();
  http.all('/*', (req, reply) => {
    reply.hijack();
    void handle(req.raw, reply.raw);
  });

  const sweep = async () => {
    try {
      const n = await audit.purgeOlderThan(config.AUTH_AUDIT_RETENTION_DAYS);
      if (n > 0) logger.info({ deleted: n }, 'token events past retention deleted');
    } catch (thrown) {
      logger.warn(
        { err: toError(thrown) },
        'token event retention sweep failed; retried next hour',
      );
    }
  };
  const timer = setInterval(() => void sweep(), RETENTION_SWEEP_MS);
  timer.unref();
  void sweep();

  return {
    http,
    provider,
    clients,
    audit,
    async stop() {
      clearInterval(timer);
      await http.close();
    },
  };
}
