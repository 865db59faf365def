// The shared kernel's public surface, for entry points that need several pieces at once.
export * from './config.js';
export * from './errors.js';
export { pingDb } from './db.js';
export { migrate } from './migrate.js';
export { pingRedis } from './redis.js';
export { createHttpServer } from './http.js';
export { WorkListener } from './engine/notify.js';
