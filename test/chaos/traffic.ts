// Mixed traffic through real clients, as the outside world sends it: ALLIO webhooks of several
// integrations (retried on failure, as ALLIO does), smart-home tenants with a WebSocket each who
// connect, open and disconnect, and kitchen tenants who order, pay and wait for their meal. Each
// client goes through "the Service": a random live api pod, another one when a connection fails.
import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import type { ChaosStack } from './stack.js';
import type { Rng } from './rng.js';

export interface WebhookRecord {
  integration: string;
  command: string;
  ids: number[];
  sentAt: number;
  /** Time of the 200, or undefined when every try failed. */
  acceptedAt?: number;
  tries: number;
}

export interface SocketEvent {
  at: number;
  event: Record<string, unknown>;
}

export interface OpenRecord {
  tenant: string;
  commandId: string;
  sentAt: number;
  /** opened / failed / timeout as the tenant learnt it, and how (socket event or REST read). */
  result?: string;
  endedAt?: number;
  via?: 'socket' | 'rest';
}

export interface OrderRecord {
  tenant: string;
  orderId: string;
  paidAt: number;
  failCooking: boolean;
  final?: string;
  endedAt?: number;
}

export interface TenantSocketState {
  tenant: string;
  events: SocketEvent[];
  /** Periods the socket was subscribed (`ready` to close). */
  up: Array<{ from: number; to?: number }>;
}

export interface TrafficStats {
  webhooks: WebhookRecord[];
  opens: OpenRecord[];
  orders: OrderRecord[];
  sockets: Map<string, TenantSocketState>;
  /** Refusals a client saw, by `METHOD route status|error` (503s while a server is down, resets at kills). */
  refusals: Map<string, number>;
  /** Connect/disconnect requests accepted (202), by tenant. */
  changes: Array<{ tenant: string; kind: string; requestId: string; at: number }>;
}

export interface TrafficOptions {
  smartHomeTenants: number;
  kitchenTenants: number;
  /** Mean pause between a tenant's actions. */
  thinkMs: number;
  /** ALLIO webhooks per second, over all integrations. */
  webhooksPerSecond: number;
  /** Ids per integration the webhooks name (1..idRange). */
  idRange: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ALLIO_COMMANDS = ['RESERVE_ADD', 'RESERVE_MOD', 'DEALCARD_ADD', 'DEALCARD_MOD'] as const;
const FINAL_ORDER = new Set(['produced', 'refunded', 'failed', 'payment_declined']);

export interface Answer {
  status: number;
  body: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- answers are read ad hoc
}

export class Traffic {
  readonly stats: TrafficStats = {
    webhooks: [],
    opens: [],
    orders: [],
    sockets: new Map(),
    refusals: new Map(),
    changes: [],
  };
  private running = false;
  private readonly loops: Promise<void>[] = [];
  private readonly sockets = new Map<string, WebSocket>();
  private readonly tokens = new Map<string, string>();

  constructor(
    private readonly s: ChaosStack,
    private readonly rng: Rng,
    private readonly o: TrafficOptions,
  ) {}

  private refuse(what: string): void {
    this.stats.refusals.set(what, (this.stats.refusals.get(what) ?? 0) + 1);
  }

  /**
   * One HTTP call through the Service. A connection that fails before an answer, or a 502/503 of a
   * pod going away, is tried again on another pod while `retryFor` lasts; the last answer is returned.
   */
  async call(
    method: string,
    path: string,
    o: {
      token?: string;
      apiKey?: string;
      body?: unknown;
      headers?: Record<string, string>;
      retryFor?: number;
      route?: string;
    } = {},
  ): Promise<Answer | undefined> {
    const deadline = Date.now() + (o.retryFor ?? 0);
    const route = o.route ?? path;
    for (;;) {
      let answer: Answer | undefined;
      try {
        const headers: Record<string, string> = { ...o.headers };
        if (o.token) headers.authorization = `Bearer ${o.token}`;
        if (o.apiKey) headers['x-api-key'] = o.apiKey;
        if (o.body !== undefined) headers['content-type'] = 'application/json';
        const res = await fetch(`${this.s.apiUrl(this.rng.next)}${path}`, {
          method,
          headers,
          body: o.body !== undefined ? JSON.stringify(o.body) : undefined,
          signal: AbortSignal.timeout(15_000),
        });
        const text = await res.text();
        let body: Record<string, unknown> = {};
        try {
          body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
        } catch {
          body = { text };
        }
        answer = { status: res.status, body };
        if (res.status < 500) return answer;
        this.refuse(`${method} ${route} ${res.status}`);
      } catch (e) {
        this.refuse(
          `${method} ${route} ${(e as Error).cause ? String(((e as Error).cause as { code?: string }).code ?? 'error') : (e as Error).name}`,
        );
      }
      if (Date.now() > deadline) return answer;
      await sleep(250 + this.rng.int(250));
    }
  }

  async start(): Promise<void> {
    this.running = true;
    for (let i = 0; i < this.o.smartHomeTenants; i++) {
      const tenant = `sh-tenant-${i}`;
      this.tokens.set(tenant, await this.s.sims.idp.issue(tenant, { ttlSeconds: 86_400 }));
      this.openSocket(tenant);
    }
    for (let i = 0; i < this.o.kitchenTenants; i++) {
      const tenant = `kitchen-tenant-${i}`;
      this.tokens.set(tenant, await this.s.sims.idp.issue(tenant, { ttlSeconds: 86_400 }));
    }
    // Sockets subscribe before the first action, so that they see its result.
    const deadline = Date.now() + 20_000;
    while (
      [...this.stats.sockets.values()].some((st) => st.up.length === 0) &&
      Date.now() < deadline
    ) {
      await sleep(100);
    }
    this.loops.push(this.webhookLoop());
    for (let i = 0; i < this.o.smartHomeTenants; i++) {
      this.loops.push(this.smartHomeLoop(`sh-tenant-${i}`, i % 2 === 0 ? 'intercom' : 'barrier'));
    }
    for (let i = 0; i < this.o.kitchenTenants; i++) {
      this.loops.push(this.kitchenLoop(`kitchen-tenant-${i}`));
    }
  }

  /** Stops new actions and waits for the started ones to end (their own deadlines bound it). */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  closeSockets(): void {
    for (const ws of this.sockets.values()) ws.terminate();
    this.sockets.clear();
  }

  /** A tenant of the harness's own (the probes), with a token but no socket and no loop. */
  async addTenant(tenant: string): Promise<void> {
    this.tokens.set(tenant, await this.s.sims.idp.issue(tenant, { ttlSeconds: 86_400 }));
  }

  token(tenant: string): string {
    const t = this.tokens.get(tenant);
    if (!t) throw new Error(`no token for ${tenant}`);
    return t;
  }

  /** The tenant's WebSocket to a random api pod; reconnects (to any pod) whenever it closes. */
  private openSocket(tenant: string): void {
    const state = this.stats.sockets.get(tenant) ?? { tenant, events: [], up: [] };
    this.stats.sockets.set(tenant, state);
    let base: string;
    try {
      base = this.s.apiUrl(this.rng.next);
    } catch {
      setTimeout(() => this.openSocket(tenant), 500);
      return;
    }
    const ws = new WebSocket(
      `${base.replace(/^http/, 'ws')}/v1/events?access_token=${encodeURIComponent(this.token(tenant))}`,
    );
    this.sockets.set(tenant, ws);
    let period: { from: number; to?: number } | undefined;
    ws.on('message', (data) => {
      let event: Record<string, unknown>;
      try {
        event = JSON.parse(data.toString()) as Record<string, unknown>;
      } catch {
        return;
      }
      if (event.type === 'ready' && !period) {
        period = { from: Date.now() };
        state.up.push(period);
      }
      state.events.push({ at: Date.now(), event });
    });
    ws.on('error', () => undefined);
    ws.once('unexpected-response', (req) => req.destroy());
    ws.once('close', () => {
      if (period) period.to = Date.now();
      if (this.sockets.get(tenant) === ws) this.sockets.delete(tenant);
      if (this.running) setTimeout(() => this.openSocket(tenant), 200 + this.rng.int(300));
    });
  }

  private async webhookLoop(): Promise<void> {
    const gap = 1000 / this.o.webhooksPerSecond;
    const inFlight: Promise<void>[] = [];
    while (this.running) {
      const it = this.s.integrations[this.rng.int(this.s.integrations.length)];
      if (!it) break;
      const command = ALLIO_COMMANDS[this.rng.int(ALLIO_COMMANDS.length)] ?? 'RESERVE_ADD';
      const ids = [
        ...new Set(
          Array.from({ length: 1 + this.rng.int(5) }, () => 1 + this.rng.int(this.o.idRange)),
        ),
      ];
      inFlight.push(this.sendWebhook(it, command, ids).then(() => undefined));
      await sleep(gap * (0.5 + this.rng.next()));
    }
    await Promise.all(inFlight);
  }

  /** A webhook as ALLIO sends it: retried for up to a minute until a 200. */
  async sendWebhook(
    it: { name: string; uuid: string; webhookKey: string },
    command: string,
    ids: number[],
    retryFor = 60_000,
  ): Promise<WebhookRecord> {
    const rec: WebhookRecord = { integration: it.name, command, ids, sentAt: Date.now(), tries: 0 };
    this.stats.webhooks.push(rec);
    const deadline = Date.now() + retryFor;
    for (;;) {
      rec.tries++;
      const a = await this.call('POST', `/webhooks/allio/${it.webhookKey}`, {
        body: { uuid: it.uuid, command, indexes: ids },
        route: '/webhooks/allio',
      });
      if (a?.status === 200) {
        rec.acceptedAt = Date.now();
        return rec;
      }
      if (a && a.status < 500 && a.status !== 429) {
        this.refuse(`webhook refused ${a.status} ${JSON.stringify(a.body).slice(0, 120)}`);
        return rec;
      }
      if (Date.now() > deadline) return rec;
      await sleep(500 + this.rng.int(500));
    }
  }

  private async subscriptionState(tenant: string, service: string): Promise<string | undefined> {
    const a = await this.call('GET', '/v1/smart-home/subscriptions', {
      token: this.token(tenant),
      retryFor: 10_000,
    });
    if (a?.status !== 200) return undefined;
    const sub = (a.body.subscriptions as Array<{ service: string; state: string }>).find(
      (x) => x.service === service,
    );
    return sub?.state ?? 'none';
  }

  private async smartHomeLoop(tenant: string, service: 'intercom' | 'barrier'): Promise<void> {
    await sleep(this.rng.int(this.o.thinkMs * 2));
    while (this.running) {
      const state = await this.subscriptionState(tenant, service);
      if (state === 'none' || state === 'disconnected' || state === 'failed') {
        await this.change(tenant, service, 'connect');
      } else if (state === 'connected') {
        if (this.rng.next() < 0.75) await this.open(tenant, service);
        else await this.change(tenant, service, 'disconnect');
      }
      // connecting / disconnecting: the request is in flight; look again after a pause.
      await sleep(this.o.thinkMs * (0.5 + this.rng.next()));
    }
  }

  async change(
    tenant: string,
    service: string,
    kind: 'connect' | 'disconnect',
  ): Promise<Answer | undefined> {
    const body =
      kind === 'connect'
        ? {
            personalData: {
              fullName: `Tenant ${tenant}`,
              phone: '+7 916 555-01-02',
              apartment: '12',
            },
            biometricsConsent: service === 'intercom',
          }
        : undefined;
    const a = await this.call('POST', `/v1/smart-home/subscriptions/${service}/${kind}`, {
      token: this.token(tenant),
      body,
      headers: { 'idempotency-key': `chaos-${randomUUID()}` },
      retryFor: 10_000,
      route: `/v1/smart-home/subscriptions/:service/${kind}`,
    });
    if (a?.status === 202) {
      this.stats.changes.push({
        tenant,
        kind,
        requestId: String((a.body.request as { id?: string })?.id ?? ''),
        at: Date.now(),
      });
    }
    return a;
  }

  /** Opens the door or barrier and waits for the result: a socket event, else a REST read. */
  async open(tenant: string, service: string, record = true): Promise<OpenRecord | undefined> {
    const sentAt = Date.now();
    const a = await this.call('POST', `/v1/smart-home/subscriptions/${service}/open`, {
      token: this.token(tenant),
      route: '/v1/smart-home/subscriptions/:service/open',
    });
    if (a?.status !== 202) return undefined;
    const rec: OpenRecord = { tenant, commandId: String(a.body.commandId), sentAt };
    if (record) this.stats.opens.push(rec);
    const sock = this.stats.sockets.get(tenant);
    const deadline = sentAt + 4_000 + 10_000;
    let nextRest = Date.now() + 5_000;
    while (Date.now() < deadline) {
      const seen = sock?.events.find(
        (e) => e.event.type === 'command.result' && e.event.commandId === rec.commandId,
      );
      if (seen) {
        Object.assign(rec, { result: String(seen.event.status), endedAt: seen.at, via: 'socket' });
        return rec;
      }
      if (Date.now() >= nextRest) {
        // The app reads the result over REST when the socket says nothing (it may have reconnected).
        nextRest = Date.now() + 2_000;
        const r = await this.call('GET', `/v1/smart-home/commands/${rec.commandId}`, {
          token: this.token(tenant),
          route: '/v1/smart-home/commands/:id',
        });
        if (r?.status === 200 && r.body.status !== 'pending') {
          Object.assign(rec, { result: String(r.body.status), endedAt: Date.now(), via: 'rest' });
          return rec;
        }
      }
      await sleep(50);
    }
    // Past the deadline: one last read, so that a late result is told apart from none at all.
    const r = await this.call('GET', `/v1/smart-home/commands/${rec.commandId}`, {
      token: this.token(tenant),
      retryFor: 10_000,
      route: '/v1/smart-home/commands/:id',
    });
    if (r?.status === 200 && r.body.status !== 'pending') {
      Object.assign(rec, { result: String(r.body.status), endedAt: Date.now(), via: 'rest' });
    } else {
      rec.result = r
        ? `${String(r.status)} ${String(r.body.status ?? r.body.code ?? '')}`.trim()
        : undefined;
    }
    return rec;
  }

  private async kitchenLoop(tenant: string): Promise<void> {
    await sleep(this.rng.int(this.o.thinkMs * 2));
    while (this.running) {
      await this.order(tenant);
      await sleep(this.o.thinkMs * 2 * (0.5 + this.rng.next()));
    }
  }

  private async order(tenant: string): Promise<void> {
    const token = this.token(tenant);
    const dish = this.rng.next() < 0.5 ? 'borscht' : 'salad';
    const placed = await this.call('POST', '/v1/kitchen/orders', {
      token,
      body: { items: [{ dishId: dish, quantity: 1 + this.rng.int(2) }] },
      headers: { 'idempotency-key': `chaos-${randomUUID()}` },
      retryFor: 10_000,
      route: '/v1/kitchen/orders',
    });
    if (placed?.status !== 201 && placed?.status !== 200) return;
    const orderId = String((placed.body.order as { orderId: string }).orderId);
    // Some meals fail on the robots: their payment must come back as a refund.
    const failCooking = this.rng.next() < 0.1;
    if (failCooking) this.s.sims.robots.failCooking.add(orderId);
    const pay = await this.call('POST', `/v1/kitchen/orders/${orderId}/payment`, {
      token,
      body: { cardToken: this.s.sims.gateway.tokenize('4111111111111111') },
      retryFor: 10_000,
      route: '/v1/kitchen/orders/:id/payment',
    });
    if (pay?.status !== 202 && pay?.status !== 200) return;
    const rec: OrderRecord = { tenant, orderId, paidAt: Date.now(), failCooking };
    this.stats.orders.push(rec);
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      await sleep(500);
      const got = await this.call('GET', `/v1/kitchen/orders/${orderId}`, {
        token,
        route: '/v1/kitchen/orders/:id',
      });
      const state = (got?.body.order as { state?: string } | undefined)?.state;
      if (state && FINAL_ORDER.has(state)) {
        rec.final = state;
        rec.endedAt = Date.now();
        return;
      }
      // After the run stops, pending orders are still followed to their end (or the deadline).
    }
  }
}
