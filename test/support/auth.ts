// The development authorization server in-process for tests: on a free port, over HTTPS when a
// certificate is given, on the test context's schema.
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { JWK } from 'oidc-provider';
import { createAuthService, type AuthService } from '../../services/auth/service.js';
import { freePort } from '../../services/core/net.js';
import type { TestContext } from './context.js';

export interface TestAuthServer {
  issuer: string;
  tokenUrl: string;
  jwksUrl: string;
  service: AuthService;
  stop(): Promise<void>;
}

export async function startAuthServer(
  ctx: TestContext,
  o: {
    tls?: { cert: string; key: string };
    ttlSeconds?: number;
    vhost?: string;
    signingKeys?: JWK[];
  } = {},
): Promise<TestAuthServer> {
  const port = await freePort();
  const dir = o.tls ? await mkdtemp(path.join(tmpdir(), 'hub-auth-')) : undefined;
  if (dir && o.tls) {
    await writeFile(path.join(dir, 'cert.pem'), o.tls.cert);
    await writeFile(path.join(dir, 'key.pem'), o.tls.key);
  }
  const issuer = `${o.tls ? 'https' : 'http'}://${o.tls ? 'localhost' : '127.0.0.1'}:${port}`;
  const service = await createAuthService({
    db: ctx.db,
    logger: ctx.logger,
    metrics: ctx.metrics,
    config: {
      AUTH_ISSUER: issuer,
      AUTH_SIGNING_JWKS: o.signingKeys as Array<Record<string, unknown>> | undefined,
      AUTH_TOKEN_TTL_SECONDS: o.ttlSeconds ?? 300,
      AUTH_TLS_CERT_FILE: dir && path.join(dir, 'cert.pem'),
      AUTH_TLS_KEY_FILE: dir && path.join(dir, 'key.pem'),
      AUTH_TRUST_PROXY: false,
      AUTH_AUDIT_RETENTION_DAYS: 90,
      RABBITMQ_RESOURCE_SERVER_ID: 'rabbitmq',
      RABBITMQ_PARTNER_VHOST: o.vhost ?? '/',
    },
  });
  await service.http.listen({ port, host: '127.0.0.1' });
  return {
    issuer,
    tokenUrl: `${issuer}/token`,
    jwksUrl: `${issuer}/jwks`,
    service,
    async stop() {
      await service.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}
