// Answers for a dependency that is down (Redis, RabbitMQ, the identity provider): 503 with a stable
// code and Retry-After, so clients back off and retry instead of treating it as their own fault.
import { ApiError } from './http.js';

/**
 * Seconds a client should wait: Redis, RabbitMQ and Keycloak restarts or failovers take seconds,
 * and the hub reconnects on its own, so a short wait is enough and spares retry storms.
 */
export const RETRY_AFTER_SECONDS = 5;

export function unavailable(code: string, message: string, retryAfterSeconds = RETRY_AFTER_SECONDS): ApiError {
  return new ApiError(503, code, message, undefined, { 'retry-after': String(retryAfterSeconds) });
}
