// Process life cycle shared by every entry point: configuration errors end start-up with a clear
// message, SIGTERM/SIGINT run the shutdown steps in order, and a second signal forces the exit.
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { ConfigError, type BaseConfig, type DatabaseConfig, type RedisConfig } from './config.js';
import { toError } from './errors.js';
import { createDb, type Db } from './db.js';
import { createLogger, type Logger } from './logger.js';
import { collectProcessMetrics, createMetrics, type Metrics } from './metrics.js';
import { createRedis } from './redis.js';

export type Shutdown = () => Promise<void>;

/** The replica's name in leases: the pod name in Kubernetes (HOSTNAME), else host and pid. */
export function instanceId(configured?: string): string {
  return configured ?? `${hostname()}-${process.pid}`;
}

/** What every service process starts with: its logger, its metrics registry, its database pool. */
export function processBasics(name: string, config: BaseConfig & DatabaseConfig): { logger: Logger; metrics: Metrics; db: Db } {
  const logger = createLogger({ level: config.LOG_LEVEL, name });
  const metrics = createMetrics();
  collectProcessMetrics(metrics.registry);
  return { logger, metrics, db: createDb(config, { applicationName: `hub-${name}` }) };
}

/** A Redis connection whose connection errors are logged, not thrown at the process. */
export function connectRedis(config: RedisConfig, logger: Logger, o: { subscriber?: boolean } = {}): Redis {
  const redis = createRedis(config, o);
  redis.on('error', (err) => logger.warn({ err }, 'redis connection error'));
  return redis;
}

/**
 * Runs `start`, which returns the shutdown steps. Exits 1 with the configuration problems listed
 * when start-up fails on configuration, and 1 with the error logged on any other start-up failure.
 */
export async function runService(
  name: string,
  start: () => Promise<{ logger: Logger; shutdown: Shutdown; shutdownTimeoutMs: number }>,
): Promise<void> {
  let started: Awaited<ReturnType<typeof start>>;
  try {
    started = await start();
  } catch (thrown) {
    const err = toError(thrown);
    if (err instanceof ConfigError) process.stderr.write(`${name}: ${err.message}\n`);
    else process.stderr.write(`${name}: start-up failed: ${err.stack ?? err.message}\n`);
    process.exit(1);
  }
  const { logger, shutdown, shutdownTimeoutMs } = started;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    // Leave room past the in-flight budget for closing pools; then give up and exit.
    const force = setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, shutdownTimeoutMs + 10_000);
    force.unref();
    shutdown().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (e: unknown) => {
        logger.error({ err: toError(e) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
