// HTTP scaffold shared by every service: /healthz (the process is alive), /readyz (its
// dependencies answer), /metrics (Prometheus), request ids, JSON errors with stable codes.
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyError } from 'fastify';
import { toError } from './errors.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

/**
 * A dependency checked by /readyz. A non-critical one is reported but does not make the pod
 * unready (a dependency only some routes need must not take the others out of service).
 */
export type ReadinessCheck = { name: string; check: () => Promise<void>; critical?: boolean };

/** An error answered to a client: a stable code and a sentence that says what to fix. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface HttpOptions {
  logger: Logger;
  metrics: Metrics;
  readiness: ReadinessCheck[];
  bodyLimitBytes?: number;
  /** Serve HTTPS with this PEM key and certificate chain instead of plain HTTP. */
  tls?: { key: string; cert: string };
}

const READY_TIMEOUT_MS = 2_000;

export function createHttpServer(o: HttpOptions): FastifyInstance {
  const app: FastifyInstance = Fastify({
    loggerInstance: o.logger as FastifyBaseLogger,
    bodyLimit: o.bodyLimitBytes ?? 256 * 1024,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // Fastify types an HTTPS instance separately; its routes and hooks are the same, so the plain
    // instance type serves both.
    ...(o.tls ? { https: { key: o.tls.key, cert: o.tls.cert } } : {}),
  }) as FastifyInstance;

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  app.addHook('onResponse', async (req, reply) => {
    o.metrics.httpDuration.observe(
      { method: req.method, route: req.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  app.setErrorHandler((error: FastifyError | ApiError, req, reply) => {
    if (error instanceof ApiError) {
      return reply
        .status(error.statusCode)
        .send({ error: { code: error.code, message: error.message, details: error.details, requestId: req.id } });
    }
    const status = error.statusCode ?? 500;
    if (status >= 500) req.log.error({ err: error }, 'request failed');
    const code =
      error.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? 'body_too_large'
        : error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? 'unsupported_media_type'
          : status === 400
            ? 'malformed_request'
            : status >= 500
              ? 'internal_error'
              : 'request_error';
    const message = status >= 500 ? 'Internal error; retry later. Quote the request id when reporting it.' : error.message;
    return reply.status(status).send({ error: { code, message, requestId: req.id } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error: { code: 'not_found', message: `No route ${req.method} ${req.url}`, requestId: req.id } }),
  );

  // Probes and scrapes are frequent; they are logged only when something is wrong.
  const quiet = { logLevel: 'warn' as const };
  app.get('/healthz', quiet, async () => ({ status: 'ok' }));
  app.get('/readyz', quiet, async (_req, reply) => {
    const results = await Promise.all(
      o.readiness.map(async ({ name, check, critical }) => {
        const c = critical ?? true;
        try {
          await withTimeout(check(), READY_TIMEOUT_MS, name);
          return { name, ok: true as const, critical: c };
        } catch (thrown) {
          return { name, ok: false as const, critical: c, error: toError(thrown).message };
        }
      }),
    );
    const ready = results.every((r) => r.ok || !r.critical);
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks: results });
  });
  app.get('/metrics', quiet, async (_req, reply) => {
    reply.header('content-type', o.metrics.registry.contentType);
    return o.metrics.registry.metrics();
  });
  return app;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
