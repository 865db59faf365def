// The allio-sync service's configuration: the shared variables, Redis for the rate limiter, and ALLIO.
import { allioEnv, baseEnv, databaseEnv, redisEnv } from '../core/config.js';

export const allioSyncEnv = baseEnv.merge(databaseEnv).merge(redisEnv).merge(allioEnv);
