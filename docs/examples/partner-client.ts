// A partner's RabbitMQ client for Integration Hub, in one file: it obtains an OAuth2 access token
// with the client-credentials grant, connects over AMQPS with the token as the password, refreshes
// the token on the open connection (AMQP `connection.update-secret`) before it expires, and asks
// for a new token when RabbitMQ refuses the current one; `consumeCommands` consumes the command
// queue across reconnects and acknowledges each command on the channel that delivered it. It
// depends only on amqplib and amqp-connection-manager (which reconnects and re-runs channel setup).
// docs/partner-sdk.md shows how to use it; the hub's own partner simulator is built on it.
import { randomUUID } from 'node:crypto';
import { request } from 'node:https';
import { request as plainRequest } from 'node:http';
import amqplib, { type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import amqp, { type AmqpConnectionManager, type ChannelWrapper } from 'amqp-connection-manager';

export interface TokenSourceOptions {
  /** The authorization server's token endpoint (`token_endpoint` of its discovery document). */
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  /** Scopes to ask for; by default the server grants all of the client's. */
  scope?: string;
  /** CA certificate(s) that sign the authorization server's certificate, if not a public CA. */
  ca?: string | Buffer;
  /** Refresh when this share of the token's lifetime has passed (default 0.75). */
  refreshAt?: number;
  timeoutMs?: number;
}

export interface AccessToken {
  token: string;
  /** Epoch milliseconds. */
  expiresAt: number;
  /** When to fetch the next one (epoch milliseconds). */
  refreshAt: number;
}

/** Thrown when the authorization server answers with an OAuth error (e.g. invalid_client). */
export class TokenRequestError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    description: string,
  ) {
    super(`token request refused (${status} ${error}): ${description}`);
    this.name = 'TokenRequestError';
  }
}

export class TokenSource {
  private current: AccessToken | undefined;
  private inFlight: Promise<AccessToken> | undefined;

  constructor(private readonly o: TokenSourceOptions) {}

  /** The cached token while it is fresh, else a new one (concurrent callers share one request). */
  async get(): Promise<AccessToken> {
    if (this.current && Date.now() < this.current.refreshAt) return this.current;
    this.inFlight ??= this.fetchToken().finally(() => (this.inFlight = undefined));
    this.current = await this.inFlight;
    return this.current;
  }

  /** Forget the cached token (RabbitMQ refused it): the next `get` asks for a new one. */
  invalidate(): void {
    this.current = undefined;
  }

  private async fetchToken(): Promise<AccessToken> {
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (this.o.scope) form.set('scope', this.o.scope);
    // RFC 6749 §2.3.1: client id and secret are form-encoded before Basic encoding.
    const basic = Buffer.from(
      `${encodeURIComponent(this.o.clientId)}:${encodeURIComponent(this.o.clientSecret)}`,
    ).toString('base64');
    const started = Date.now();
    const { status, body } = await postForm(
      this.o.tokenUrl,
      form.toString(),
      { authorization: `Basic ${basic}` },
      this.o,
    );
    let parsed: {
      access_token?: unknown;
      expires_in?: unknown;
      error?: unknown;
      error_description?: unknown;
    };
    try {
      parsed = JSON.parse(body) as typeof parsed;
    } catch {
      throw new TokenRequestError(status, 'invalid_response', `not JSON: ${body.slice(0, 200)}`);
    }
    if (status !== 200 || typeof parsed.access_token !== 'string') {
      throw new TokenRequestError(
        status,
        String(parsed.error ?? 'invalid_response'),
        String(parsed.error_description ?? ''),
      );
    }
    const lifetimeMs = (typeof parsed.expires_in === 'number' ? parsed.expires_in : 300) * 1000;
    return {
      token: parsed.access_token,
      expiresAt: started + lifetimeMs,
      refreshAt: started + lifetimeMs * (this.o.refreshAt ?? 0.75),
    };
  }
}

function postForm(
  url: string,
  body: string,
  headers: Record<string, string>,
  o: { ca?: string | Buffer; timeoutMs?: number },
): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  const send = u.protocol === 'https:' ? request : plainRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      u,
      {
        method: 'POST',
        headers: {
          ...headers,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          'content-length': Buffer.byteLength(body),
        },
        ...(u.protocol === 'https:' ? { ca: o.ca, minVersion: 'TLSv1.2' as const } : {}),
        timeout: o.timeoutMs ?? 10_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`token request timed out after ${o.timeoutMs ?? 10_000} ms`)),
    );
    req.on('error', reject);
    req.end(body);
  });
}

export interface PartnerConnectionOptions {
  /** `amqps://host:5671/vhost`, without credentials: the token is the password. */
  url: string;
  tokens: TokenSource;
  /** CA certificate(s) that sign the broker's certificate, if not a public CA. */
  ca?: string | Buffer;
  /** The name the broker's certificate is checked against (defaults to the URL's host). */
  servername?: string;
  connectionName?: string;
  /** Called with problems worth a log line (refresh failed, token refused). */
  onWarning?: (message: string, err?: Error) => void;
}

/** How soon a failed refresh (authorization server or broker unreachable) is tried again. */
const REFRESH_RETRY_MS = 5_000;
/**
 * A refused update-secret closes the connection (530 NOT_ALLOWED) and amqplib's promise then never
 * settles, so the refresh gives up waiting after this long.
 */
const UPDATE_SECRET_TIMEOUT_MS = 10_000;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} got no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * A refusal of the credentials: 403 ACCESS_REFUSED at login or on an expired token, or 530
 * NOT_ALLOWED when the broker refused a token given with update-secret. A new token is needed.
 */
export function isAuthRefusal(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return /ACCESS[-_]REFUSED|\b403\b|expired|authenticat|secret was refused/i.test(message);
}

/**
 * A reconnecting AMQPS connection authenticated by access tokens. Each (re)connect takes a fresh
 * token from `tokens`; while connected, the token is replaced on the connection before it expires.
 * Create channels on the returned manager as usual; their setup runs again after a reconnect.
 */
export function connectPartner(o: PartnerConnectionOptions): AmqpConnectionManager {
  const warn = o.onWarning ?? (() => undefined);
  const u = new URL(o.url);
  const conn = amqp.connect(null, {
    heartbeatIntervalInSeconds: 10,
    reconnectTimeInSeconds: 1,
    findServers: async () => {
      const { token } = await o.tokens.get();
      return {
        url: o.url,
        connectionOptions: {
          ca: o.ca ? [o.ca] : undefined,
          servername: o.servername ?? u.hostname,
          credentials: amqplib.credentials.plain('', token),
          clientProperties: { connection_name: o.connectionName ?? 'partner' },
        },
      };
    },
  });

  let timer: NodeJS.Timeout | undefined;
  const arm = (ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => void refresh(), Math.max(0, ms));
    timer.unref();
  };
  /** Arms the next refresh at the current token's refresh time. */
  const schedule = () =>
    void o.tokens.get().then(
      ({ refreshAt }) => arm(refreshAt - Date.now()),
      (err: Error) => {
        warn('no access token for the next refresh; trying again', err);
        arm(REFRESH_RETRY_MS);
      },
    );
  const refresh = async () => {
    const live = conn.connection;
    if (!live) return;
    try {
      const { token } = await o.tokens.get();
      await withTimeout(
        live.updateSecret(Buffer.from(token), 'access token refresh'),
        UPDATE_SECRET_TIMEOUT_MS,
        'update-secret',
      );
      schedule();
    } catch (thrown) {
      // Until a refresh succeeds the old token serves; once it has expired the broker refuses the
      // connection's next operations, and a refusal that closes the connection brings a new token.
      warn(
        'token refresh on the open connection failed; trying again',
        thrown instanceof Error ? thrown : new Error(String(thrown)),
      );
      arm(REFRESH_RETRY_MS);
    }
  };

  conn.on('connect', () => schedule());
  const onLost = ({ err }: { err: Error }) => {
    clearTimeout(timer);
    if (isAuthRefusal(err)) {
      warn('the broker refused the access token; asking for a new one', err);
      o.tokens.invalidate();
    }
  };
  conn.on('disconnect', onLost);
  conn.on('connectFailed', onLost);
  const close = conn.close.bind(conn);
  conn.close = async () => {
    clearTimeout(timer);
    await close();
  };
  return conn;
}

/** A command and how to settle it: always on the channel that delivered it. */
export interface CommandDelivery {
  msg: ConsumeMessage;
  /**
   * Acknowledge once the reply is confirmed. Returns false when the delivering channel has closed
   * (a reconnect): nothing is sent, and the broker delivers the command again.
   */
  ack(): boolean;
  /** Hand the command back (`requeue`) or drop it; false as for `ack`. */
  nack(requeue: boolean): boolean;
}

export interface CommandConsumerOptions {
  /** Your command queue, e.g. `partner.domofon-plus.commands`. */
  queue: string;
  /** Commands delivered but not yet acknowledged, at most (default 50). */
  prefetch?: number;
  /** Runs before consuming on every new channel (e.g. declarations, in local tests only). */
  setup?: (ch: ConfirmChannel) => Promise<void>;
  /** Handles one command: publish the reply on `channel`, then `ack()`. Must not throw. */
  onCommand: (delivery: CommandDelivery) => void;
  onWarning?: (message: string, err?: Error) => void;
}

export interface CommandConsumer {
  /** A confirm channel for replies: a publish resolves when the broker has the message, and waits out a reconnect. */
  channel: ChannelWrapper;
  /** Stops new deliveries; commands already handed over can still be acknowledged. */
  cancel(): Promise<void>;
}

/**
 * Consumes the command queue on a confirm channel, again after every reconnect, and hands each
 * command over with `ack`/`nack` bound to the channel that delivered it.
 *
 * Do not acknowledge with `ChannelWrapper.ack`: it sends to whatever channel is current, and a
 * delivery tag means something only on the channel that issued it. After a reconnect an old tag on
 * the new channel is unknown (the broker closes the channel with `406 PRECONDITION_FAILED - unknown
 * delivery tag`, and every command in flight on it comes back) or acknowledges another command. A
 * command whose channel has closed needs nothing: the broker has put it back already, and the hub
 * settles each command once, so answering it twice is harmless.
 */
export function consumeCommands(
  conn: AmqpConnectionManager,
  o: CommandConsumerOptions,
): CommandConsumer {
  const warn = o.onWarning ?? (() => undefined);
  const consumerTag = `partner-${randomUUID()}`;
  let current: ConfirmChannel | undefined;
  let cancelled = false;

  const deliveryOn = (
    ch: ConfirmChannel,
    msg: ConsumeMessage,
    closed: { now: boolean },
  ): CommandDelivery => {
    const settle = (send: () => void): boolean => {
      if (closed.now) return false;
      try {
        send();
        return true;
      } catch {
        // amqplib throws IllegalOperationError on a channel that is closing.
        return false;
      }
    };
    return {
      msg,
      ack: () => settle(() => ch.ack(msg)),
      nack: (requeue) => settle(() => ch.nack(msg, false, requeue)),
    };
  };

  const channel = conn.createChannel({
    confirm: true,
    setup: async (ch: ConfirmChannel) => {
      if (cancelled) return;
      const closed = { now: false };
      ch.once('close', () => (closed.now = true));
      current = ch;
      await o.setup?.(ch);
      await ch.prefetch(o.prefetch ?? 50);
      await ch.consume(
        o.queue,
        (msg) => {
          // null: the broker cancelled the consumer (queue deleted); the next reconnect consumes again.
          if (msg) o.onCommand(deliveryOn(ch, msg, closed));
          else warn(`the broker cancelled the consumer of ${o.queue}`);
        },
        { noAck: false, consumerTag },
      );
    },
  });
  // Without a listener a failed setup would throw at the process; the next reconnect runs it again.
  channel.on('error', (err: Error) =>
    warn('channel setup failed; retrying after the next reconnect', err),
  );
  return {
    channel,
    async cancel() {
      cancelled = true;
      await current?.cancel(consumerTag).catch(() => undefined);
    },
  };
}
