// A Keycloak for the operator's tests, speaking the real HTTP protocol of the paths the operator
// uses: the client-credentials token endpoint of one realm, and the Admin REST API's clients,
// client scopes, a client's protocol mappers and its default and optional scope links, with
// Keycloak's status codes, Location headers and error bodies. Failures and stalls are injected per
// request pattern.
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { track } from './leaks.js';

type Json = Record<string, unknown>;
interface MapperFields {
  name: string;
  protocol: string;
  protocolMapper: string;
  config: Record<string, string>;
}
export interface FakeMapper extends MapperFields, Json {
  id: string;
}
export interface FakeClient extends Json {
  id: string;
  clientId: string;
  enabled: boolean;
  secret: string;
  attributes: Record<string, string>;
  protocolMappers: FakeMapper[];
}
interface FakeScope extends Json {
  id: string;
  name: string;
}

export interface FakeKeycloak {
  url: string;
  realm: string;
  /** Every request served, as "METHOD /path?query", in order. */
  requests: string[];
  /** The bodies of those requests (empty when none), in the same order. */
  bodies: string[];
  /** The admin requests that change something (POST, PUT, DELETE), in order. */
  writes(): string[];
  tokensIssued(): number;
  client(clientId: string): FakeClient | undefined;
  /** Names of a client's default or optional client scopes. */
  scopesOf(clientId: string, kind: 'default' | 'optional'): string[];
  scopeNames(): string[];
  /** Links a client scope to a client by hand, as an administrator in the console would. */
  link(clientId: string, scopeName: string, kind: 'default' | 'optional'): void;
  /** Every request whose "METHOD /path" matches gets this answer until `clear()`. */
  fail(match: RegExp, status: number, body: unknown): void;
  /** Every request whose "METHOD /path" matches is left without an answer until `clear()`. */
  stall(match: RegExp): void;
  clear(): void;
  /** Invalidates every token issued so far, as a restart of Keycloak with new keys would. */
  revokeTokens(): void;
  close(): Promise<void>;
}

const SCOPE_NAME = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export async function startFakeKeycloak(o: {
  realm: string;
  clientId: string;
  clientSecret: string;
  tokenLifetimeSeconds?: number;
}): Promise<FakeKeycloak> {
  const requests: string[] = [];
  const bodies: string[] = [];
  const clients = new Map<string, FakeClient>(); // id -> client
  // Keycloak's built-in scopes, which a realm created by hand has and partner clients must not get.
  const scopes = new Map<string, FakeScope>(
    ['profile', 'email'].map((name) => {
      const id = randomUUID();
      return [
        id,
        { id, name, protocol: 'openid-connect', attributes: { 'include.in.token.scope': 'true' } },
      ];
    }),
  );
  const links = {
    default: new Map<string, Set<string>>(),
    optional: new Map<string, Set<string>>(),
  }; // client id -> scope ids
  const tokens = new Set<string>();
  let issued = 0;
  const failures: { match: RegExp; status: number; body: unknown }[] = [];
  const stalls: RegExp[] = [];
  const stalled = new Set<http.ServerResponse>();

  const send = (
    res: http.ServerResponse,
    status: number,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    res.writeHead(
      status,
      body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    );
    res.end(body === undefined ? undefined : JSON.stringify(body));
  };
  const byClientId = (clientId: string) =>
    [...clients.values()].find((c) => c.clientId === clientId);
  const linked = (kind: 'default' | 'optional', id: string) => {
    let s = links[kind].get(id);
    if (!s) links[kind].set(id, (s = new Set()));
    return s;
  };
  const view = (c: FakeClient) => ({
    ...structuredClone(c),
    defaultClientScopes: [...linked('default', c.id)].map((s) => scopes.get(s)!.name),
    optionalClientScopes: [...linked('optional', c.id)].map((s) => scopes.get(s)!.name),
    access: { view: true, configure: true, manage: true },
  });
  const scopeByName = (name: string) => [...scopes.values()].find((s) => s.name === name);

  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const line = `${req.method} ${url.pathname}`;
      requests.push(`${line}${url.search}`);
      bodies.push(raw);
      if (stalls.some((m) => m.test(line))) {
        stalled.add(res);
        return;
      }
      const failure = failures.find((f) => f.match.test(line));
      if (failure) return send(res, failure.status, failure.body);

      if (
        req.method === 'POST' &&
        url.pathname === `/realms/${o.realm}/protocol/openid-connect/token`
      ) {
        const form = new URLSearchParams(raw);
        if (form.get('grant_type') !== 'client_credentials') {
          return send(res, 400, {
            error: 'unsupported_grant_type',
            error_description: 'Unsupported grant_type',
          });
        }
        if (form.get('client_id') !== o.clientId || form.get('client_secret') !== o.clientSecret) {
          return send(res, 401, {
            error: 'unauthorized_client',
            error_description: 'Invalid client or Invalid client credentials',
          });
        }
        const token = randomBytes(24).toString('base64url');
        tokens.add(token);
        issued++;
        return send(res, 200, {
          access_token: token,
          expires_in: o.tokenLifetimeSeconds ?? 300,
          token_type: 'Bearer',
          scope: '',
        });
      }

      const prefix = `/admin/realms/${o.realm}`;
      if (!url.pathname.startsWith(`${prefix}/`)) {
        return send(res, 404, { error: 'Unable to find matching target resource method' });
      }
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (!bearer || !tokens.has(bearer)) return send(res, 401, { error: 'HTTP 401 Unauthorized' });
      const body = raw ? (JSON.parse(raw) as Json) : undefined;
      const parts = url.pathname
        .slice(prefix.length + 1)
        .split('/')
        .map(decodeURIComponent);
      const location = (...p: string[]) => ({
        location: `http://${req.headers.host}${prefix}/${p.map(encodeURIComponent).join('/')}`,
      });

      if (parts[0] === 'client-scopes') {
        if (parts.length === 1 && req.method === 'GET') return send(res, 200, [...scopes.values()]);
        if (parts.length === 1 && req.method === 'POST' && body) {
          const name = String(body.name);
          if (!SCOPE_NAME.test(name)) {
            return send(res, 400, { errorMessage: `Unexpected name "${name}" for ClientScope` });
          }
          if (scopeByName(name)) {
            return send(res, 409, { errorMessage: `Client Scope ${name} already exists` });
          }
          const s: FakeScope = { ...body, id: randomUUID(), name };
          scopes.set(s.id, s);
          return send(res, 201, undefined, location('client-scopes', s.id));
        }
        const s = scopes.get(parts[1] ?? '');
        if (!s) return send(res, 404, { error: 'Could not find client scope' });
        if (parts.length === 2 && req.method === 'PUT' && body) {
          scopes.set(s.id, { ...s, ...body, id: s.id });
          return send(res, 204);
        }
        return send(res, 405, { error: 'HTTP 405 Method Not Allowed' });
      }

      if (parts[0] !== 'clients') {
        return send(res, 404, { error: 'Unable to find matching target resource method' });
      }
      if (parts.length === 1 && req.method === 'GET') {
        const wanted = url.searchParams.get('clientId');
        return send(
          res,
          200,
          [...clients.values()].filter((c) => wanted === null || c.clientId === wanted).map(view),
        );
      }
      if (parts.length === 1 && req.method === 'POST' && body) {
        const clientId = String(body.clientId);
        if (byClientId(clientId)) {
          return send(res, 409, { errorMessage: `Client ${clientId} already exists` });
        }
        const { defaultClientScopes, optionalClientScopes, protocolMappers, ...rest } =
          body as Json & {
            defaultClientScopes?: string[];
            optionalClientScopes?: string[];
            protocolMappers?: MapperFields[];
          };
        const c: FakeClient = {
          enabled: true,
          attributes: {},
          ...(rest as Partial<FakeClient>),
          id: randomUUID(),
          clientId,
          // Keycloak generates a confidential client's secret when none is given.
          secret:
            typeof rest.secret === 'string' ? rest.secret : randomBytes(24).toString('base64url'),
          protocolMappers: (protocolMappers ?? []).map((m) => ({ ...m, id: randomUUID() })),
        };
        clients.set(c.id, c);
        // Named scopes that do not exist are skipped, as Keycloak does (with a warning in its log).
        for (const n of defaultClientScopes ?? ['profile', 'email']) {
          const s = scopeByName(n);
          if (s) linked('default', c.id).add(s.id);
        }
        for (const n of optionalClientScopes ?? []) {
          const s = scopeByName(n);
          if (s) linked('optional', c.id).add(s.id);
        }
        return send(res, 201, undefined, location('clients', c.id));
      }
      const c = clients.get(parts[1] ?? '');
      if (!c) return send(res, 404, { error: 'Could not find client' });
      if (parts.length === 2 && req.method === 'GET') return send(res, 200, view(c));
      if (parts.length === 2 && req.method === 'PUT' && body) {
        // Keycloak's client update sets the fields given and leaves mappers and scope links alone.
        const {
          protocolMappers: _m,
          defaultClientScopes: _d,
          optionalClientScopes: _o,
          id: _id,
          access: _a,
          attributes,
          ...rest
        } = body as Json & { attributes?: Record<string, string> };
        Object.assign(c, rest, { attributes: { ...c.attributes, ...(attributes ?? {}) } });
        return send(res, 204);
      }
      if (parts[2] === 'default-client-scopes' || parts[2] === 'optional-client-scopes') {
        const kind = parts[2] === 'default-client-scopes' ? 'default' : 'optional';
        if (parts.length === 3 && req.method === 'GET') {
          return send(
            res,
            200,
            [...linked(kind, c.id)].map((id) => ({ id, name: scopes.get(id)!.name })),
          );
        }
        const s = scopes.get(parts[3] ?? '');
        if (!s) return send(res, 404, { error: 'Could not find client scope' });
        if (req.method === 'PUT') linked(kind, c.id).add(s.id);
        else if (req.method === 'DELETE') linked(kind, c.id).delete(s.id);
        else return send(res, 405, { error: 'HTTP 405 Method Not Allowed' });
        return send(res, 204);
      }
      if (parts[2] === 'protocol-mappers' && parts[3] === 'models') {
        if (parts.length === 4 && req.method === 'POST' && body) {
          if (c.protocolMappers.some((m) => m.name === body.name)) {
            return send(res, 409, { errorMessage: `Protocol mapper exists with same name` });
          }
          const m: FakeMapper = { ...(body as unknown as MapperFields), id: randomUUID() };
          c.protocolMappers.push(m);
          return send(
            res,
            201,
            undefined,
            location('clients', c.id, 'protocol-mappers', 'models', m.id),
          );
        }
        const m = c.protocolMappers.find((x) => x.id === parts[4]);
        if (!m) return send(res, 404, { error: 'Model not found' });
        if (req.method === 'PUT' && body) {
          Object.assign(m, body, { id: m.id });
          return send(res, 204);
        }
      }
      return send(res, 405, { error: 'HTTP 405 Method Not Allowed' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const untrack = track(`fake Keycloak ${url}`);

  return {
    url,
    realm: o.realm,
    requests,
    bodies,
    writes: () => requests.filter((r) => /^(POST|PUT|DELETE) \/admin\//.test(r)),
    tokensIssued: () => issued,
    client: (clientId) => {
      const c = byClientId(clientId);
      return c && structuredClone(c);
    },
    scopesOf: (clientId, kind) => {
      const c = byClientId(clientId);
      return c ? [...linked(kind, c.id)].map((id) => scopes.get(id)!.name).sort() : [];
    },
    scopeNames: () => [...scopes.values()].map((s) => s.name).sort(),
    link(clientId, scopeName, kind) {
      linked(kind, byClientId(clientId)!.id).add(scopeByName(scopeName)!.id);
    },
    fail: (match, status, body) => failures.push({ match, status, body }),
    stall: (match) => stalls.push(match),
    clear() {
      failures.length = 0;
      stalls.length = 0;
      for (const res of stalled) res.destroy();
      stalled.clear();
    },
    revokeTokens: () => tokens.clear(),
    async close() {
      for (const res of stalled) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      untrack();
    },
  };
}
