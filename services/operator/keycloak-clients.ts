// The smart-home partners' clients at Keycloak, kept as the realm file describes them
// (services/domains/partner-access/keycloak-realm.ts), through Keycloak's Admin REST API with the operator's own
// client credentials. Keycloak generates each new client's secret; an SRE reads it from Keycloak
// and hands it to the partner (docs/deployment.md). Nothing here logs a secret or a token.
import { HttpError, toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import {
  OutboundRefusedError,
  type OutboundPolicy,
  type PartnerResponse,
} from '../core/outbound.js';
import {
  partnerClientRepresentation,
  rabbitMqClientScope,
  type KeycloakClient,
  type KeycloakClientScope,
  type KeycloakProtocolMapper,
  type RabbitMqTarget,
} from '../domains/partner-access/keycloak-realm.js';
import type { OAuthClientRegistry } from './executor.js';

interface KeycloakClientRegistryOptions {
  /** Keycloak's base URL, e.g. https://sso.example.com (Keycloak 17+ paths, no /auth). */
  url: string;
  /** The partners' realm, where the operator's own client lives too. */
  realm: string;
  clientId: string;
  clientSecret: string;
  target: RabbitMqTarget;
  timeoutMs: number;
  logger: Logger;
  /** https only (http with OUTBOUND_ALLOW_HTTP), allowed hosts, no redirects, bounded answers. */
  outbound: OutboundPolicy;
  fetch?: typeof fetch;
  /** The clock that decides when the cached admin token is due for renewal. */
  now?: () => number;
}

/** A client as the Admin REST API returns it: ours plus what Keycloak adds (id, its own attributes). */
type StoredClient = Omit<Partial<KeycloakClient>, 'protocolMappers'> & {
  id: string;
  clientId: string;
  protocolMappers?: (KeycloakProtocolMapper & { id: string })[];
} & Record<string, unknown>;
type StoredScope = Partial<KeycloakClientScope> & { id: string; name: string } & Record<
    string,
    unknown
  >;
type ScopeLinks = 'default-client-scopes' | 'optional-client-scopes';

/**
 * A token is renewed this long before Keycloak says it expires (at most half its lifetime), so no
 * call carries a token that runs out on the way.
 */
const TOKEN_RENEWAL_MARGIN_MS = 30_000;

/** Kept through sub-resources (mappers, scope links), or never sent back (the secret, Keycloak's access flags). */
const NOT_SENT = new Set([
  'protocolMappers',
  'defaultClientScopes',
  'optionalClientScopes',
  'secret',
  'access',
]);

const sendable = (c: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(c).filter(([k]) => !NOT_SENT.has(k)));

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Whether `stored` holds every key of `wanted` with the same value. */
const covers = (
  stored: Record<string, string> | undefined,
  wanted: Record<string, string>,
): boolean => Object.entries(wanted).every(([k, v]) => stored?.[k] === v);

/** Keycloak's error text: `errorMessage` (admin API), `error_description`/`error` (token endpoint), or the body. */
function keycloakError(text: string): string {
  try {
    const body = JSON.parse(text) as {
      errorMessage?: unknown;
      error_description?: unknown;
      error?: unknown;
    };
    const message = [body.errorMessage, body.error_description, body.error].find(
      (m) => typeof m === 'string' && m,
    );
    if (typeof message === 'string') return message;
  } catch {
    // Not JSON: the body itself says what went wrong.
  }
  return text.trim().slice(0, 300) || '(no body)';
}

export class KeycloakClientRegistry implements OAuthClientRegistry {
  private readonly base: string;
  private readonly fetch: typeof fetch;
  private readonly now: () => number;
  private token: { value: string; renewAt: number } | undefined;
  private pendingToken: Promise<string> | undefined;

  constructor(private readonly o: KeycloakClientRegistryOptions) {
    this.base = o.url.replace(/\/+$/, '');
    this.fetch = o.fetch ?? fetch;
    this.now = o.now ?? Date.now;
  }

  /**
   * Creates the partner's client, or brings it back to what it should be: the fields the realm file
   * sets, enabled, our protocol mappers, and exactly the partner's RabbitMQ scopes as its default
   * scopes (created as client scopes when missing) and no optional ones. Protocol mappers that are
   * not ours are left alone (Keycloak adds its own to service-account clients in some versions).
   * Nothing is written when nothing differs.
   */
  async ensureClient(o: { partner: string; clientId: string; queue: string }): Promise<void> {
    const desired = partnerClientRepresentation(
      { partner: o.partner, clientId: o.clientId, commandQueue: o.queue },
      this.o.target,
    );
    const scopeIds = await this.ensureClientScopes(desired.defaultClientScopes);
    let client = await this.findClient(o.clientId);
    if (!client) {
      const { location } = await this.admin('POST', '/clients', desired);
      client = await this.clientAfterCreate(o.clientId, location);
      this.o.logger.info(
        { partner: o.partner, clientId: o.clientId },
        'partner client created at Keycloak; Keycloak generated its secret',
      );
    } else if (this.clientDiffers(client, desired)) {
      await this.admin('PUT', `/clients/${enc(client.id)}`, this.clientUpdate(client, desired));
      this.o.logger.info(
        { partner: o.partner, clientId: o.clientId },
        'partner client at Keycloak updated',
      );
    }
    await this.ensureMappers(client, desired.protocolMappers);
    await this.ensureScopeLinks(client.id, 'default-client-scopes', scopeIds);
    await this.ensureScopeLinks(client.id, 'optional-client-scopes', new Map());
  }

  /**
   * Disables the client: it can obtain no new token, and it stays, with its secret and event
   * history, for when the partner comes back. A client that does not exist is nothing to do.
   */
  async removeClient(o: { partner: string; clientId: string }): Promise<void> {
    const client = await this.findClient(o.clientId);
    if (!client || client.enabled === false) return;
    await this.admin('PUT', `/clients/${enc(client.id)}`, { ...sendable(client), enabled: false });
    this.o.logger.info(
      { partner: o.partner, clientId: o.clientId },
      'partner client at Keycloak disabled',
    );
  }

  private async findClient(clientId: string): Promise<StoredClient | undefined> {
    const { json } = await this.admin('GET', `/clients?clientId=${enc(clientId)}`);
    return (json as StoredClient[]).find((c) => c.clientId === clientId);
  }

  private async clientAfterCreate(
    clientId: string,
    location: string | null,
  ): Promise<StoredClient> {
    const id = location?.split('/').pop();
    if (id) return (await this.admin('GET', `/clients/${enc(id)}`)).json as StoredClient;
    const found = await this.findClient(clientId);
    if (!found) throw new Error(`Keycloak created client ${clientId} but does not list it`);
    return found;
  }

  private clientDiffers(stored: StoredClient, desired: KeycloakClient): boolean {
    const fields = Object.entries(sendable({ ...desired })).filter(([k]) => k !== 'attributes');
    return (
      fields.some(([k, v]) => !same(stored[k], v)) || !covers(stored.attributes, desired.attributes)
    );
  }

  /** The stored client with our fields over it: Keycloak's own fields and attributes stay as they are. */
  private clientUpdate(stored: StoredClient, desired: KeycloakClient): Record<string, unknown> {
    return {
      ...sendable(stored),
      ...sendable({ ...desired }),
      attributes: { ...stored.attributes, ...desired.attributes },
    };
  }

  /** The ids of the named client scopes, each created or corrected where it is missing or differs. */
  private async ensureClientScopes(names: readonly string[]): Promise<Map<string, string>> {
    const stored = (await this.admin('GET', '/client-scopes')).json as StoredScope[];
    const ids = new Map<string, string>();
    for (const name of names) {
      const desired = rabbitMqClientScope(name);
      const existing = stored.find((s) => s.name === name);
      if (!existing) {
        const { location } = await this.admin('POST', '/client-scopes', desired);
        const id =
          location?.split('/').pop() ??
          ((await this.admin('GET', '/client-scopes')).json as StoredScope[]).find(
            (s) => s.name === name,
          )?.id;
        if (!id) throw new Error(`Keycloak created client scope ${name} but does not list it`);
        ids.set(name, id);
        continue;
      }
      if (
        existing.protocol !== desired.protocol ||
        existing.description !== desired.description ||
        !covers(existing.attributes, desired.attributes)
      ) {
        await this.admin('PUT', `/client-scopes/${enc(existing.id)}`, {
          ...existing,
          ...desired,
          attributes: { ...existing.attributes, ...desired.attributes },
        });
      }
      ids.set(name, existing.id);
    }
    return ids;
  }

  private async ensureMappers(
    client: StoredClient,
    desired: readonly KeycloakProtocolMapper[],
  ): Promise<void> {
    const path = `/clients/${enc(client.id)}/protocol-mappers/models`;
    for (const m of desired) {
      const existing = (client.protocolMappers ?? []).find((x) => x.name === m.name);
      if (!existing) await this.admin('POST', path, m);
      else if (
        existing.protocolMapper !== m.protocolMapper ||
        existing.protocol !== m.protocol ||
        !covers(existing.config, m.config)
      ) {
        await this.admin('PUT', `${path}/${enc(existing.id)}`, {
          ...existing,
          ...m,
          config: { ...existing.config, ...m.config },
        });
      }
    }
  }

  /** Links exactly the wanted scopes (by id) as the client's default or optional scopes. */
  private async ensureScopeLinks(
    clientId: string,
    kind: ScopeLinks,
    wanted: ReadonlyMap<string, string>,
  ): Promise<void> {
    const path = `/clients/${enc(clientId)}/${kind}`;
    const linked = (await this.admin('GET', path)).json as { id: string; name: string }[];
    const linkedIds = new Set(linked.map((l) => l.id));
    for (const id of wanted.values()) {
      if (!linkedIds.has(id)) await this.admin('PUT', `${path}/${enc(id)}`);
    }
    const wantedIds = new Set(wanted.values());
    for (const l of linked) {
      if (!wantedIds.has(l.id)) await this.admin('DELETE', `${path}/${enc(l.id)}`);
    }
  }

  /** One Admin REST API call; a 401 renews the token once (it may have been revoked or Keycloak restarted). */
  private async admin(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ json: unknown; location: string | null }> {
    const url = `${this.base}/admin/realms/${enc(this.o.realm)}${path}`;
    for (let attempt = 1; ; attempt++) {
      const token = await this.accessToken();
      const res = await this.send(method, path, url, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const { text } = res;
      if (res.status === 401 && attempt === 1) {
        if (this.token?.value === token) this.token = undefined;
        continue;
      }
      if (!res.ok) {
        throw new HttpError(
          res.status,
          `Keycloak ${method} ${path} answered ${res.status}: ${keycloakError(text)}`,
        );
      }
      return {
        json: text ? (JSON.parse(text) as unknown) : undefined,
        location: res.headers.get('location'),
      };
    }
  }

  /** The operator's access token, cached until shortly before it expires; concurrent callers share one request. */
  private accessToken(): Promise<string> {
    if (this.token && this.now() < this.token.renewAt) return Promise.resolve(this.token.value);
    this.pendingToken ??= this.requestToken().finally(() => (this.pendingToken = undefined));
    return this.pendingToken;
  }

  private async requestToken(): Promise<string> {
    const path = `/realms/${enc(this.o.realm)}/protocol/openid-connect/token`;
    const requestedAt = this.now();
    const res = await this.send('POST', path, `${this.base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: this.o.clientId,
        client_secret: this.o.clientSecret,
      }).toString(),
    });
    const { text } = res;
    if (!res.ok) {
      throw new HttpError(
        res.status,
        `Keycloak refused the operator's token request (client ${this.o.clientId}, realm ${this.o.realm}): ${res.status} ${keycloakError(text)}`,
      );
    }
    const body = JSON.parse(text) as { access_token?: unknown; expires_in?: unknown };
    if (typeof body.access_token !== 'string' || typeof body.expires_in !== 'number') {
      throw new Error(
        `Keycloak's token answer for client ${this.o.clientId} has no access_token and expires_in`,
      );
    }
    const lifetimeMs = body.expires_in * 1000;
    this.token = {
      value: body.access_token,
      renewAt: requestedAt + lifetimeMs - Math.min(TOKEN_RENEWAL_MARGIN_MS, lifetimeMs / 2),
    };
    return body.access_token;
  }

  /** fetch with the timeout; a timeout or a connection failure becomes an error naming the call. */
  private async send(
    method: string,
    path: string,
    url: string,
    init: RequestInit,
  ): Promise<PartnerResponse> {
    try {
      return await this.o.outbound.fetch(
        'keycloak',
        url,
        { ...init, signal: AbortSignal.timeout(this.o.timeoutMs) },
        this.fetch,
      );
    } catch (thrown) {
      if (thrown instanceof OutboundRefusedError) throw thrown;
      // The timeout's DOMException is not always an Error instance (another realm); its name says what it is.
      const timedOut =
        typeof thrown === 'object' &&
        thrown !== null &&
        (thrown as { name?: unknown }).name === 'TimeoutError';
      const what = timedOut
        ? `did not answer within ${this.o.timeoutMs} ms`
        : `could not be reached: ${toError(thrown).message}`;
      throw new Error(`Keycloak ${method} ${path} ${what}`, { cause: thrown });
    }
  }
}

const enc = encodeURIComponent;
