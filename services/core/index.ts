// The shared kernel's public surface, for entry points that need several pieces at once.
export * from './config.js';
export * from './errors.js';
export { createLogger, type Logger } from './logger.js';
export { createDb, pingDb, type Db } from './db.js';
export { migrate } from './migrate.js';
export { createMetrics, collectProcessMetrics, type Metrics } from './metrics.js';
export { createRedis, pingRedis } from './redis.js';
export { createHttpServer, ApiError, type ReadinessCheck } from './http.js';
export { WorkListener } from './engine/notify.js';
