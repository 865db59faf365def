// The api service's configuration: the shared variables plus HTTP limits.
import { baseEnv, databaseEnv, httpEnv, redisEnv } from '../core/config.js';

export const apiEnv = baseEnv.merge(databaseEnv).merge(redisEnv).merge(httpEnv);
