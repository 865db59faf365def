// The allio-sync service's configuration: the shared variables, Redis for the rate limiter, ALLIO,
// and the daily retention purge.
import { allioEnv, baseEnv, databaseEnv, redisEnv, retentionEnv } from '../core/config.js';

export const allioSyncEnv = baseEnv
  .merge(databaseEnv)
  .merge(redisEnv)
  .merge(allioEnv)
  .merge(retentionEnv);
