// Partner security end to end on a real broker: a RabbitMQ node of the test's own with the OAuth 2.0
// backend and an AMQPS listener, keys fetched over HTTPS from the hub's authorization server, and
// partners connecting the way docs/partner-sdk.md tells them to.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import amqplib, { type Channel, type ChannelModel, type GetMessage } from 'amqplib';
import type { Channel as TopologyChannel } from 'amqp-connection-manager';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { pino } from 'pino';
import { connectPartner, TokenSource, type AccessToken } from '../docs/examples/partner-client.js';
import { TOKEN_EVENTS } from '../services/domains/partner-access/audit.js';
import { buildCommand, replyMessage } from '../services/contracts/smart-home-messages.js';
import {
  assertRepliesTopology,
  assertPartnerTopology,
  COMMANDS_EXCHANGE,
  REPLIES_EXCHANGE,
  REPLIES_QUEUE,
} from '../services/contracts/smart-home-topology.js';
import { PartnerSimulator } from '../services/simulators/smart-home/partner.js';
import {
  createCertificateAuthority,
  type CertificateAuthority,
} from '../services/simulators/tls.js';
import { startAuthServer, type TestAuthServer } from './support/auth.js';
import { createTestContext, waitFor, type TestContext } from './support/context.js';
import { startServiceProcess, expectCleanExit } from './support/process.js';
import { startPartnerBroker, type RabbitTlsNode } from './support/rabbitmq-node.js';

const KID = 'hub-test-signing-1';
const TTL_SECONDS = 8;
const PARTNERS = ['a', 'b', 'c'] as const;
type Partner = (typeof PARTNERS)[number];
const queueOf = (p: string) => `partner.${p}.commands`;
const clientOf = (p: string) => `partner-${p}`;

let ctx: TestContext;
let ca: CertificateAuthority;
let auth: TestAuthServer;
let node: RabbitTlsNode;
let signingKey: CryptoKey;
let guest: ChannelModel;
let guestChannel: Channel;
const secrets = {} as Record<Partner, string>;
const opened: ChannelModel[] = [];
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

const partnerUrl = () => `amqps://localhost:${node.tlsPort}/`;
const tokens = (p: Partner, secret = secrets[p]) =>
  new TokenSource({
    tokenUrl: auth.tokenUrl,
    clientId: clientOf(p),
    clientSecret: secret,
    ca: ca.cert,
  });

/** A plain amqplib connection as a partner: AMQPS, the CA verified, the token as the password. */
async function connectWith(token: string): Promise<ChannelModel> {
  const conn = await amqplib.connect(partnerUrl(), {
    ca: [ca.cert],
    servername: 'localhost',
    credentials: amqplib.credentials.plain('', token),
  });
  conn.on('error', () => undefined);
  opened.push(conn);
  return conn;
}

/** A token signed by hand: with the server's key and claims changed, or with another key. */
async function forge(
  o: { audience?: string; expiresInSeconds?: number; key?: CryptoKey; scope?: string } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    scope: o.scope ?? `rabbitmq.read:%2F/${queueOf('a')}`,
    client_id: clientOf('a'),
  })
    .setProtectedHeader({ alg: 'RS256', kid: KID })
    .setIssuer(auth.issuer)
    .setSubject(clientOf('a'))
    .setAudience(o.audience ?? 'rabbitmq')
    .setIssuedAt(now - 60)
    .setExpirationTime(now + (o.expiresInSeconds ?? 300))
    .sign(o.key ?? signingKey);
}

/** Publishes a command to a partner through the hub's side of the broker. */
async function sendCommand(partner: Partner): Promise<string> {
  const command = buildCommand({
    type: 'device.open',
    correlationId: crypto.randomUUID(),
    service: 'intercom',
    tenantRef: crypto.randomUUID(),
    createdAt: new Date(),
    attempt: 1,
    payload: { expiresAt: new Date(Date.now() + 60_000).toISOString() },
  });
  guestChannel.publish(COMMANDS_EXCHANGE, partner, Buffer.from(JSON.stringify(command)), {
    persistent: true,
    contentType: 'application/json',
  });
  return command.correlationId;
}

/** Waits for the partner's reply to `correlationId` on the hub's reply queue. */
async function replyTo(correlationId: string, timeoutMs = 15_000): Promise<GetMessage> {
  return waitFor(
    async () => {
      for (;;) {
        const msg = await guestChannel.get(REPLIES_QUEUE, { noAck: false });
        if (!msg) return undefined;
        guestChannel.ack(msg);
        if (
          replyMessage.parse(JSON.parse(msg.content.toString())).correlationId === correlationId
        ) {
          return msg;
        }
      }
    },
    timeoutMs,
    `the reply to ${correlationId}`,
  );
}

/** The AMQP error a refused operation closes its channel with. */
function closedWith(ch: Channel): Promise<Error> {
  return new Promise((resolve) => ch.once('error', resolve));
}

beforeAll(async () => {
  ctx = await createTestContext('psec');
  ca = await createCertificateAuthority('Integration Hub partner security test CA');
  const [authCert, brokerCert, keys] = await Promise.all([
    ca.issue('localhost'),
    ca.issue('localhost'),
    generateKeyPair('RS256', { extractable: true }),
  ]);
  signingKey = keys.privateKey;
  const jwk = { ...(await exportJWK(keys.privateKey)), kid: KID, alg: 'RS256', use: 'sig' };
  auth = await startAuthServer(ctx, { tls: authCert, ttlSeconds: TTL_SECONDS, signingKeys: [jwk] });
  node = await startPartnerBroker({
    tls: { ca: ca.cert, cert: brokerCert.cert, key: brokerCert.key },
    jwksUrl: auth.jwksUrl,
  });
  guest = await amqplib.connect(node.amqpUrl);
  guestChannel = await guest.createChannel();
  // The declarations use only the amqplib channel methods both channel types share.
  const topology = guestChannel as unknown as TopologyChannel;
  await assertRepliesTopology(topology);
  for (const p of PARTNERS) {
    await assertPartnerTopology(topology, { name: p, commandQueue: queueOf(p) });
    await auth.service.clients.ensure({ partner: p, clientId: clientOf(p), queue: queueOf(p) });
    secrets[p] = await auth.service.clients.rotateSecret(clientOf(p));
  }
}, 120_000);

afterAll(async () => {
  for (const c of opened) await c.close().catch(() => undefined);
  await guest?.close().catch(() => undefined);
  await node?.stop();
  await auth?.stop();
  await ctx?.close();
}, 60_000);

describe('partner access with tokens from the authorization server', () => {
  test('partner A with a valid token consumes its own queue and publishes replies (the simulator over AMQPS)', async () => {
    const sim = new PartnerSimulator({
      amqpUrl: partnerUrl(),
      auth: { tokens: tokens('a'), ca: ca.cert },
      partner: 'a',
      commandQueue: queueOf('a'),
      declareTopology: false,
      logger,
    });
    await sim.start();
    try {
      const correlationId = await sendCommand('a');
      const reply = await replyTo(correlationId);
      expect(reply.fields.routingKey).toBe('a');
      expect(replyMessage.parse(JSON.parse(reply.content.toString())).payload.outcome).toBe(
        'success',
      );
      expect(sim.received.map((r) => r.command.correlationId)).toContain(correlationId);
    } finally {
      await sim.stop();
    }
  }, 30_000);

  test('the simulator process connects as a partner from its environment: token endpoint, client, CA', async () => {
    const sim = startServiceProcess('services/simulators/smart-home/main.ts', {
      AMQP_URL: partnerUrl(),
      SIM_PARTNER: 'a',
      SIM_DELAY_MS: '0',
      SIM_TOKEN_URL: auth.tokenUrl,
      SIM_CLIENT_ID: clientOf('a'),
      SIM_CLIENT_SECRET: secrets.a,
      SIM_CA_FILE: node.caFile,
    });
    try {
      await waitFor(
        () => sim.output().includes('partner simulator consuming'),
        20_000,
        'the simulator to consume',
      );
      const reply = await replyTo(await sendCommand('a'));
      expect(reply.fields.routingKey).toBe('a');
      expect(sim.output()).not.toContain(secrets.a);
    } finally {
      sim.child.kill('SIGTERM');
      await expectCleanExit(sim);
    }
  }, 40_000);

  test("partner A is refused on partner B's queue and cannot reply in B's name", async () => {
    const { token } = await tokens('a').get();
    const conn = await connectWith(token);
    const foreign = await conn.createChannel();
    const refusedConsume = closedWith(foreign);
    await expect(foreign.consume(queueOf('b'), () => undefined)).rejects.toThrow(/ACCESS_REFUSED/);
    expect((await refusedConsume).message).toMatch(
      /403 \(ACCESS-REFUSED\).*access to queue 'partner\.b\.commands' in vhost '\/' refused for user 'partner-a'/,
    );

    const spoof = await conn.createConfirmChannel();
    const refusedPublish = closedWith(spoof);
    spoof.publish(REPLIES_EXCHANGE, 'b', Buffer.from('{}'));
    expect((await refusedPublish).message).toMatch(/ACCESS_REFUSED/);

    // The same connection still reads its own queue: the refusals were about B, not the token.
    const own = await conn.createChannel();
    await expect(own.consume(queueOf('a'), () => undefined)).resolves.toHaveProperty('consumerTag');
  });

  test('no token, a wrong signature, a wrong audience and an expired token are refused at connect', async () => {
    const other = await generateKeyPair('RS256');
    const refused = {
      'no token': '',
      'wrong signature': await forge({ key: other.privateKey }),
      'wrong audience': await forge({ audience: 'not-rabbitmq' }),
      expired: await forge({ expiresInSeconds: -30 }),
    };
    for (const [why, token] of Object.entries(refused)) {
      await expect(connectWith(token).then(() => why)).rejects.toThrow(/ACCESS.REFUSED|403/);
    }
    // The control: the same forging with nothing wrong is let in, so each refusal had its own reason.
    await expect(connectWith(await forge())).resolves.toBeDefined();
  }, 30_000);

  test("a refreshed token continues the session past the first token's expiry, on the same connection", async () => {
    const source = tokens('b');
    const first = await source.get();
    // The contrast: a connection that keeps its first token.
    const unrefreshed = await connectWith(first.token);
    const conn = connectPartner({ url: partnerUrl(), tokens: source, ca: ca.cert });
    let connects = 0;
    conn.on('connect', () => connects++);
    const got: string[] = [];
    const ch = conn.createChannel({
      setup: (c: Channel) =>
        c.consume(queueOf('b'), (m) => {
          if (!m) return;
          got.push(JSON.parse(m.content.toString()).correlationId as string);
          c.ack(m);
        }),
    });
    try {
      await ch.waitForConnect();
      const before = await sendCommand('b');
      await waitFor(() => got.includes(before), 10_000, 'the first command');
      // Past the first token's expiry, with margin for the broker's clock.
      await new Promise((r) => setTimeout(r, first.expiresAt - Date.now() + 3_000));
      const after = await sendCommand('b');
      await waitFor(
        () => got.includes(after),
        10_000,
        'the command sent after the first token expired',
      );
      expect(connects).toBe(1);
      expect((await source.get()).token).not.toBe(first.token);
      const late = await unrefreshed.createChannel().catch((e: Error) => e);
      if (!(late instanceof Error)) late.on('error', () => undefined);
      const refusal =
        late instanceof Error
          ? late
          : await late
              .consume(queueOf('b'), () => undefined)
              .then(
                () => undefined,
                (e: Error) => e,
              );
      expect(refusal?.message).toMatch(/ACCESS.REFUSED|expired/);
    } finally {
      await ch.close();
      await conn.close();
    }
  }, 40_000);

  test('after the broker refuses a token, the partner asks for a new one and reconnects', async () => {
    const source = tokens('c');
    const stale: AccessToken = {
      token: await forge({ expiresInSeconds: -30 }),
      expiresAt: Date.now() + 60_000,
      refreshAt: Date.now() + 60_000,
    };
    // A cached token the broker no longer accepts (as after a key rotation at the issuer).
    Object.assign(source, { current: stale });
    const warnings: string[] = [];
    const conn = connectPartner({
      url: partnerUrl(),
      tokens: source,
      ca: ca.cert,
      onWarning: (m) => warnings.push(m),
    });
    try {
      await waitFor(() => conn.isConnected(), 15_000, 'a connection with a new token');
      expect(warnings).toContain('the broker refused the access token; asking for a new one');
      expect((await source.get()).token).not.toBe(stale.token);
    } finally {
      await conn.close();
    }
  }, 30_000);

  test('every issued token and every failed token request is in the audit table', async () => {
    const wrong = tokens('a', 'not-the-secret');
    await expect(wrong.get()).rejects.toThrow(/invalid_client/);
    const disabled = tokens('c');
    await auth.service.clients.disable(clientOf('c'));
    await expect(disabled.get()).rejects.toThrow(/invalid_client/);
    const issued = await tokens('a').get();

    const rows = await ctx.db(TOKEN_EVENTS).orderBy('id');
    const failures = rows
      .filter((r) => r.outcome !== 'issued')
      .map((r) => [r.client_id, r.outcome]);
    expect(failures).toEqual([
      [clientOf('a'), 'bad_secret'],
      [clientOf('c'), 'disabled_client'],
    ]);
    const issuedRows = rows.filter((r) => r.outcome === 'issued');
    // Every token a partner used in this file: the simulator's, the refreshes, the reconnects.
    expect(issuedRows.length).toBeGreaterThanOrEqual(5);
    expect(issuedRows.map((r) => r.token_id)).toContain(decodeJwt(issued.token).jti);
    for (const r of rows) {
      expect(r).toMatchObject({
        source_address: expect.stringMatching(/127\.0\.0\.1/),
        at: expect.any(Date),
      });
    }
    const metric = await ctx.metrics.registry.getSingleMetricAsString(
      'hub_auth_token_requests_total',
    );
    const total = [...metric.matchAll(/outcome="issued"\} (\d+)/g)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
    expect(total).toBe(issuedRows.length);
  });
});
