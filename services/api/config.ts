// The api service's configuration: the shared variables plus HTTP limits. The webhook ingress
// needs only PostgreSQL, so Redis being down never makes it refuse webhooks.
import { baseEnv, databaseEnv, httpEnv } from '../core/config.js';

export const apiEnv = baseEnv.merge(databaseEnv).merge(httpEnv);
