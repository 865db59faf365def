// The audit of the token endpoint, which records every token issued and every failed attempt:
// one auth_token_events row per request, written before the
// answer leaves. If the row cannot be written, no token is handed out: the client gets 503 and
// asks again.
import { decodeJwt } from 'jose';
import type { Knex } from 'knex';
import type { Counter } from 'prom-client';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { storable } from '../../core/bounds.js';
import { toError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { CLIENTS, type AuthClient } from './clients.js';

export const TOKEN_EVENTS = 'auth_token_events';

type TokenOutcome =
  | 'issued'
  | 'unknown_client'
  | 'bad_secret'
  | 'disabled_client'
  | 'invalid_request'
  | 'invalid_scope'
  | 'server_error';

interface TokenEvent {
  client_id: string | null;
  source_address: string | null;
  outcome: TokenOutcome;
  grant_type: string | null;
  scope: string | null;
  token_id: string | null;
  expires_at: Date | null;
  error: string | null;
}

/** Metric label for a client id that is not a registered client: keeps guessed ids out of the series. */
const UNREGISTERED = '(unregistered)';

/**
 * Characters of a presented client id that are recorded. Registered ids are at most 200; a longer
 * one (cut and marked with "…", so it matches no client) would otherwise be stored whole, and past
 * ~2,700 bytes PostgreSQL refuses it in the client index, which turned the refusal into a 503.
 */
export const MAX_RECORDED_CLIENT_ID = 200;

/** The client id a failed request presented: HTTP Basic (form-encoded, RFC 6749 §2.3.1) or the body. */
export function presentedClientId(
  authorization: string | undefined,
  bodyClientId: unknown,
): string | null {
  const id = presentedClientIdWhole(authorization, bodyClientId);
  return id === null ? null : storable(id, MAX_RECORDED_CLIENT_ID);
}

function presentedClientIdWhole(
  authorization: string | undefined,
  bodyClientId: unknown,
): string | null {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
  if (m?.[1]) {
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const id = colon >= 0 ? decoded.slice(0, colon) : decoded;
    try {
      return decodeURIComponent(id.replace(/\+/g, ' ')) || null;
    } catch {
      return id || null;
    }
  }
  return typeof bodyClientId === 'string' && bodyClientId !== '' ? bodyClientId : null;
}

/** The failure's outcome from the OAuth error code; for invalid_client, what the client row says. */
export function classifyFailure(
  error: string,
  client: Pick<AuthClient, 'active' | 'secret_hash'> | undefined,
): TokenOutcome {
  if (error === 'invalid_client') {
    if (!client) return 'unknown_client';
    if (!client.active) return 'disabled_client';
    return 'bad_secret';
  }
  if (error === 'invalid_scope') return 'invalid_scope';
  if (error === 'server_error') return 'server_error';
  return 'invalid_request';
}

export class TokenAudit {
  private readonly pending = new WeakMap<object, Promise<TokenEvent>>();

  constructor(
    private readonly db: Knex,
    private readonly requests: Counter<'client_id' | 'outcome'>,
    private readonly logger: Logger,
  ) {}

  /** Hooks into the provider's token endpoint events and persists each event before answering. */
  attach(provider: Provider): void {
    const hold = (ctx: object, event: Promise<TokenEvent>) => {
      // Awaited by the middleware below; marked handled now so a failed lookup is not reported as
      // an unhandled rejection before it is.
      event.catch(() => undefined);
      this.pending.set(ctx, event);
    };
    provider.on('grant.success', (ctx) => hold(ctx, Promise.resolve(this.issued(ctx))));
    provider.on('grant.error', (ctx, err) =>
      hold(
        ctx,
        this.failed(ctx, err.error ?? 'server_error', err.error_description ?? err.message),
      ),
    );
    // An unexpected failure is reported as server_error instead of grant.error.
    provider.on('server_error', (ctx, err) => {
      if (ctx.oidc?.route === 'token') hold(ctx, this.failed(ctx, 'server_error', err.message));
    });
    provider.use(async (ctx, next) => {
      await next();
      const event = this.pending.get(ctx);
      if (!event) return;
      try {
        const e = await event;
        await this.db(TOKEN_EVENTS).insert(e);
        this.requests.inc({
          client_id: e.outcome === 'unknown_client' || !e.client_id ? UNREGISTERED : e.client_id,
          outcome: e.outcome,
        });
      } catch (thrown) {
        this.logger.error(
          { err: toError(thrown) },
          'token request not recorded; answering 503 without a token',
        );
        ctx.status = 503;
        ctx.set('Retry-After', '1');
        ctx.body = {
          error: 'temporarily_unavailable',
          error_description: 'the request could not be recorded; retry',
        };
      }
    });
  }

  private base(ctx: KoaContextWithOIDC): Pick<TokenEvent, 'source_address' | 'grant_type'> {
    const grant = (ctx.oidc?.params as { grant_type?: unknown } | undefined)?.grant_type;
    return {
      source_address: ctx.ip || null,
      grant_type: typeof grant === 'string' ? storable(grant, 100) : null,
    };
  }

  /** From the token just answered (signed here a moment ago): its id, scope and expiry exactly. */
  private issued(ctx: KoaContextWithOIDC): TokenEvent {
    const body = ctx.body as { access_token?: unknown } | undefined;
    const claims = typeof body?.access_token === 'string' ? decodeJwt(body.access_token) : {};
    return {
      ...this.base(ctx),
      client_id: ctx.oidc.client?.clientId ?? null,
      outcome: 'issued',
      scope: typeof claims.scope === 'string' ? claims.scope : null,
      token_id: claims.jti ?? null,
      expires_at: typeof claims.exp === 'number' ? new Date(claims.exp * 1000) : null,
      error: null,
    };
  }

  private async failed(
    ctx: KoaContextWithOIDC,
    error: string,
    description: string,
  ): Promise<TokenEvent> {
    const params = ctx.oidc?.params as { client_id?: unknown } | undefined;
    const clientId =
      ctx.oidc?.client?.clientId ?? presentedClientId(ctx.get('authorization'), params?.client_id);
    const row =
      error === 'invalid_client' && clientId
        ? await this.db<AuthClient>(CLIENTS).where({ client_id: clientId }).first()
        : undefined;
    return {
      ...this.base(ctx),
      client_id: clientId,
      outcome: classifyFailure(error, row),
      scope: null,
      token_id: null,
      expires_at: null,
      error: storable(description, 500),
    };
  }

  /** Removes events older than the retention, in batches, so the table stays bounded. */
  async purgeOlderThan(days: number): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.db(TOKEN_EVENTS)
        .whereIn(
          'id',
          this.db(TOKEN_EVENTS)
            .select('id')
            .where('at', '<', this.db.raw(`now() - make_interval(days => ?)`, [days]))
            .limit(5_000),
        )
        .delete();
      total += n;
      if (n < 5_000) return total;
    }
  }
}
