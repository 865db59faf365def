// HTTP scaffold shared by every service: /healthz (the process is alive), /readyz (its
// dependencies answer), /metrics (Prometheus), request ids, JSON errors with stable codes, and the
// limits that keep a slow or hostile client from holding connections (timeouts, a connection cap).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Knex } from 'knex';
import { httpServerEnv, type HttpServerConfig } from './config.js';
import { boundDetails, clip, jsonRefusal, MAX_MESSAGE_TEXT } from './bounds.js';
import { DependencyState } from './dependency-state.js';
import { describeError, isDatabaseUnavailable, toError } from './errors.js';
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
    /** Response headers that go with the error, e.g. Retry-After on a 503. */
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

// Answers for a dependency that is down (Redis, RabbitMQ, the identity provider): 503 with a stable
// code and Retry-After, so clients back off and retry instead of treating it as their own fault.
/**
 * Seconds a client should wait: Redis, RabbitMQ and Keycloak restarts or failovers take seconds,
 * and the hub reconnects on its own, so a short wait is enough and spares retry storms.
 */
export const RETRY_AFTER_SECONDS = 5;

export function unavailable(
  code: string,
  message: string,
  retryAfterSeconds = RETRY_AFTER_SECONDS,
): ApiError {
  return new ApiError(503, code, message, undefined, { 'retry-after': String(retryAfterSeconds) });
}

interface HttpOptions {
  logger: Logger;
  metrics: Metrics;
  readiness: ReadinessCheck[];
  bodyLimitBytes?: number;
  /** Serve HTTPS with this PEM key and certificate chain instead of plain HTTP. */
  tls?: { key: string; cert: string };
  /** Timeouts and the connection cap; the defaults of httpServerEnv for any left out. */
  limits?: Partial<HttpServerConfig>;
  /**
   * The database the routes query: a query it answers (the readiness ping's included) ends an
   * outage the routes reported with 503 database_unavailable.
   */
  db?: Knex;
}

const READY_TIMEOUT_MS = 2_000;
const DEFAULT_LIMITS = httpServerEnv.parse({});

/** A client's request id is kept only in this form: safe to log, to echo and to search for. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID();
}

function withDefaults(given: Partial<HttpServerConfig> = {}): HttpServerConfig {
  const l = { ...DEFAULT_LIMITS };
  for (const k of Object.keys(l) as (keyof HttpServerConfig)[]) l[k] = given[k] ?? l[k];
  return l;
}

/**
 * Node's server options for the limits. Node checks headers and request timeouts on a timer
 * (every 30 s by default, so a 10 s limit could hold for 40 s); a quarter of the headers timeout,
 * at most a second, keeps the overshoot small for the cost of a walk over the open requests.
 */
function nodeServerOptions(l: HttpServerConfig) {
  const headersTimeout = Math.min(l.HTTP_HEADERS_TIMEOUT_MS, l.HTTP_REQUEST_TIMEOUT_MS);
  return {
    headersTimeout,
    connectionsCheckingInterval: Math.max(25, Math.min(1_000, Math.floor(headersTimeout / 4))),
  };
}

export function createHttpServer(o: HttpOptions): FastifyInstance {
  const limits = withDefaults(o.limits);
  const node = nodeServerOptions(limits);
  const app: FastifyInstance = Fastify({
    loggerInstance: o.logger as FastifyBaseLogger,
    // Longest path segment a route parameter may hold (fastify's default 100 answered ALLIO webhook
    // keys of 101-128 characters with 414); each route still validates its own parameters.
    routerOptions: { maxParamLength: 256 },
    bodyLimit: o.bodyLimitBytes ?? 256 * 1024,
    // The header is read by requestIdOf, which keeps only a safe value.
    requestIdHeader: false,
    genReqId: requestIdOf,
    // Errors the router raises before any hook (a path that is not valid percent-encoding) skip the
    // error handler, and fastify's own answer quotes the whole URL: 16 KB for a long path.
    frameworkErrors: answerFrameworkError,
    requestTimeout: limits.HTTP_REQUEST_TIMEOUT_MS,
    keepAliveTimeout: limits.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    http: node,
    // Fastify types an HTTPS instance separately; its routes and hooks are the same, so the plain
    // instance type serves both.
    ...(o.tls ? { https: { key: o.tls.key, cert: o.tls.cert, ...node } } : {}),
  }) as FastifyInstance;
  limitConnections(app, limits.HTTP_MAX_CONNECTIONS, o.metrics);

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  // Requests that found PostgreSQL unreachable: one line when that starts, one when it answers a
  // query again, a reminder a minute between (not an error with a stack per request). An answer
  // below 500 says nothing about the database: a 404, a refused token or a malformed body never
  // reached it.
  const database = new DependencyState(o.logger, {
    name: 'postgresql',
    effect:
      'requests that need it are answered 503 database_unavailable (check the server and DATABASE_URL)',
  });
  if (o.db) {
    const db = o.db;
    const answered = () => database.up();
    db.on('query-response', answered);
    app.addHook('onClose', async () => {
      db.off('query-response', answered);
    });
  }
  app.addHook('onResponse', async (req, reply) => {
    o.metrics.httpDuration.observe(
      {
        method: req.method,
        route: req.routeOptions.url ?? 'unmatched',
        status_code: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
  });

  refuseDeepJson(app);
  // Answers stay small whatever a route put in them (the routes bound their own details too).
  app.setErrorHandler((error: FastifyError | ApiError, req, reply) => {
    if (error instanceof ApiError) {
      if (error.headers) reply.headers(error.headers);
      const message = clip(error.message, MAX_MESSAGE_TEXT);
      return reply.status(error.statusCode).send({
        error: {
          code: error.code,
          message,
          details: boundDetails(error.details),
          requestId: req.id,
        },
      });
    }
    if (isDatabaseUnavailable(error)) {
      database.down(describeError(error), { route: req.routeOptions.url ?? 'unmatched' });
      return reply
        .status(503)
        .header('retry-after', String(RETRY_AFTER_SECONDS))
        .send({
          error: {
            code: 'database_unavailable',
            message: 'The database is not answering; retry in a few seconds.',
            requestId: req.id,
          },
        });
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
    const message =
      status >= 500
        ? 'Internal error; retry later. Quote the request id when reporting it.'
        : clip(error.message, MAX_MESSAGE_TEXT);
    return reply.status(status).send({ error: { code, message, requestId: req.id } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({
      error: {
        code: 'not_found',
        message: `No route ${req.method} ${clip(req.url, 200)}`,
        requestId: req.id,
      },
    }),
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
    return reply
      .status(ready ? 200 : 503)
      .send({ status: ready ? 'ready' : 'not_ready', checks: results });
  });
  app.get('/metrics', quiet, async (_req, reply) => {
    reply.header('content-type', o.metrics.registry.contentType);
    return o.metrics.registry.metrics();
  });
  return app;
}

function answerFrameworkError(error: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const malformed = error.code === 'FST_ERR_BAD_URL';
  void reply.status(400).send({
    error: {
      code: malformed ? 'malformed_url' : 'malformed_request',
      message: malformed
        ? 'The request path is not valid percent-encoding.'
        : clip(error.message, MAX_MESSAGE_TEXT),
      requestId: req.id,
    },
  });
}

/** Drops connections beyond `max` at accept (Node's maxConnections) and counts each. */
function limitConnections(app: FastifyInstance, max: number, metrics: Metrics): void {
  app.server.maxConnections = max;
  app.server.on('drop', () => metrics.httpConnectionsRefused.inc());
}

/** JSON bodies through fastify's own parser (prototype-poisoning checks kept), refused past MAX_JSON_DEPTH or with a NUL. */
function refuseDeepJson(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) =>
    parse(req, typeof body === 'string' ? body : body.toString('utf8'), (err, value) => {
      if (err) return done(err);
      const refusal = jsonRefusal(value);
      return refusal ? done(new ApiError(400, refusal.code, refusal.message)) : done(null, value);
    }),
  );
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
