// Structured JSON logging (pino) with secrets redacted wherever they could appear.
import { pino, stdSerializers, symbols, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Paths whose values never reach a log line. */
const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  '*.apiToken',
  '*.api_token',
  '*.password',
  '*.token',
  '*.secret',
  'apiToken',
  'api_token',
  'password',
  'token',
];

/**
 * URL parts that are credentials: the ALLIO webhook key in its path, and the access token a browser's
 * WebSocket passes as a query parameter.
 */
const SECRET_PATHS: readonly RegExp[] = [
  /^(\/webhooks\/allio\/)[^/?#]+/,
  /([?&]access_token=)[^&#]*/g,
];

/** A server URL for logs and messages with its password replaced by `***` (`what` names it when it does not parse). */
export function redactUrlPassword(url: string, what: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return `(unparseable ${what})`;
  }
}

export function redactUrl(url: string): string {
  return SECRET_PATHS.reduce((u, re) => u.replace(re, '$1[redacted]'), url);
}

interface LoggedRequest {
  id?: string;
  method?: string;
  url?: string;
  ip?: string;
}

/** The process logger; `destination` defaults to stdout (tests pass a stream to read the lines). */
export function createLogger(
  options: { level: string; name?: string },
  destination?: DestinationStream,
): Logger {
  return pino(
    {
      level: options.level,
      name: options.name,
      base: { service: options.name },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: {
        err: stdSerializers.err,
        req: (req: LoggedRequest) => ({
          method: req.method,
          url: redactUrl(req.url ?? ''),
          remoteAddress: req.ip,
        }),
      },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** The part of pino's default destination (sonic-boom) that tells whether a write is under way. */
interface AsyncDestination {
  _writing?: boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/**
 * Resolves once every line logged so far has reached the destination (at most `timeoutMs` later).
 * Call it before `process.exit`: pino's default destination writes asynchronously, and its exit
 * handler writes what is still buffered at once, alongside a write that may still be under way,
 * so the last lines before an exit could land out of order or not at all. `_writing` is
 * sonic-boom's own flag for that write (it has no public one); with any other destination there is
 * nothing to wait for.
 */
export function logsWritten(logger: Logger, timeoutMs = 2_000): Promise<void> {
  const stream = (logger as unknown as Record<symbol, unknown>)[symbols.streamSym] as
    AsyncDestination | undefined;
  if (!stream?._writing) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    stream.once('drain', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
