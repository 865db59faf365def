// Partners reach RabbitMQ over AMQPS with an OAuth 2.0 access token: on a throw-away broker node
// with a TLS listener (certificate from a CA made for the run) and the OAuth 2.0 backend (keys
// from a JWKS served over HTTPS by the test), tokens carrying the scopes of services/domains/partner-access/scopes.ts
// get exactly their partner's access; the rest is refused at connect or per operation. These are
// the facts about RabbitMQ 3.10's plugin the hub's scope format and token refresh rely on.
import { existsSync, readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import amqplib, {
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  type ConsumeMessage,
} from 'amqplib';
import type { Channel as TopologyChannel } from 'amqp-connection-manager';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import {
  DEFAULT_RESOURCE_SERVER_ID,
  partnerScopes,
} from '../services/domains/partner-access/scopes.js';
import {
  assertRepliesTopology,
  assertPartnerTopology,
  COMMANDS_EXCHANGE,
  REPLIES_EXCHANGE,
  REPLIES_QUEUE,
} from '../services/contracts/smart-home-topology.js';
import {
  createCertificateAuthority,
  type CertificateAuthority,
} from '../services/simulators/tls.js';
import { waitFor } from './support/context.js';
import {
  descendants,
  startPartnerBroker,
  startRabbitNode,
  type RabbitTlsNode,
} from './support/rabbitmq-node.js';

const KID = 'partner-tokens-1';
/** Partners with a command queue on the node; each test consumes only its own partners' queues. */
const PARTNERS = ['a', 'b', 'expiring', 'refreshed', 'bad-refresh', 'late-refresh', 'switch'];
const commandQueue = (partner: string) => `partner.${partner}.commands`;

let ca: CertificateAuthority;
let node: RabbitTlsNode;
let jwks: https.Server;
let jwksRequests = 0;
let signingKey: CryptoKey;
let otherKey: CryptoKey;
let admin: ChannelModel;
let adminChannel: Channel;
const opened: ChannelModel[] = [];

beforeAll(async () => {
  ca = await createCertificateAuthority('Integration Hub test CA');
  const [brokerCert, jwksCert, keys, other] = await Promise.all([
    ca.issue('localhost'),
    ca.issue('localhost'),
    generateKeyPair('RS256'),
    generateKeyPair('RS256'),
  ]);
  signingKey = keys.privateKey;
  otherKey = other.privateKey;
  const jwk: JWK = { ...(await exportJWK(keys.publicKey)), kid: KID, alg: 'RS256', use: 'sig' };
  jwks = https.createServer(jwksCert, (_req, res) => {
    jwksRequests++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
  const jwksUrl = `https://localhost:${(jwks.address() as AddressInfo).port}/jwks.json`;

  node = await startPartnerBroker({
    tls: { ca: ca.cert, ...brokerCert },
    jwksUrl,
    resourceServerId: DEFAULT_RESOURCE_SERVER_ID,
  });
  admin = await amqplib.connect(node.amqpUrl);
  adminChannel = await admin.createChannel();
  // The topology functions use only assertExchange, assertQueue and bindQueue, which a plain
  // amqplib channel has with the same signatures as amqp-connection-manager's channel wrapper.
  const topology = adminChannel as unknown as TopologyChannel;
  await assertRepliesTopology(topology);
  for (const partner of PARTNERS) {
    await assertPartnerTopology(topology, { name: partner, commandQueue: commandQueue(partner) });
  }
}, 120_000);

afterAll(async () => {
  await Promise.all(opened.map((c) => c.close().catch(() => undefined)));
  await admin?.close().catch(() => undefined);
  if (jwks) {
    jwks.closeAllConnections();
    await new Promise<void>((resolve) => jwks.close(() => resolve()));
  }
  await node?.stop();
}, 60_000);

/** Runs a test body; when it fails, the node's log is printed with the failure. */
function withLogs(body: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await body();
    } catch (err) {
      console.log(`RabbitMQ node log (last 20000 characters):\n${node.logs().slice(-20_000)}`);
      throw err;
    }
  };
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

interface TokenOptions {
  partner?: string;
  scope?: string;
  audience?: string;
  kid?: string;
  key?: CryptoKey;
  expiresAt?: number;
}

/** An access token as the hub's authorization server issues it to a partner's client. */
function token(o: TokenOptions = {}): Promise<string> {
  const partner = o.partner ?? 'a';
  const scope =
    o.scope ??
    partnerScopes({
      partner,
      commandQueue: commandQueue(partner),
      vhost: '/',
      resourceServerId: DEFAULT_RESOURCE_SERVER_ID,
    }).join(' ');
  return new SignJWT({ scope })
    .setProtectedHeader({ alg: 'RS256', kid: o.kid ?? KID })
    .setSubject(`partner-${partner}`)
    .setAudience(o.audience ?? DEFAULT_RESOURCE_SERVER_ID)
    .setIssuedAt()
    .setExpirationTime(o.expiresAt ?? nowSeconds() + 3600)
    .sign(o.key ?? signingKey);
}

const amqpsUrl = () => `amqps://localhost:${node.tlsPort}`;

/** AMQPS, certificate verified against the run's CA; the password is the access token. */
async function connectWithToken(accessToken: string, username = ''): Promise<ChannelModel> {
  const conn = await amqplib.connect(amqpsUrl(), {
    ca: [ca.cert],
    servername: 'localhost',
    credentials: amqplib.credentials.plain(username, accessToken),
  });
  conn.on('error', () => {});
  opened.push(conn);
  return conn;
}

async function channel(conn: ChannelModel): Promise<ConfirmChannel> {
  const ch = await conn.createConfirmChannel();
  ch.on('error', () => {});
  return ch;
}

/** The error a channel is closed with by the broker, while `action` runs. */
async function channelError(
  ch: Channel,
  action: () => Promise<unknown>,
): Promise<Error & { code?: number }> {
  const closed = new Promise<Error & { code?: number }>((resolve) => ch.once('error', resolve));
  await action().catch(() => undefined);
  return closed;
}

/** Publishes and waits for the broker's confirm. */
async function reply(ch: ConfirmChannel, routingKey: string, body: string): Promise<void> {
  ch.publish(REPLIES_EXCHANGE, routingKey, Buffer.from(body));
  await ch.waitForConfirms();
}

function collect(into: string[]): (m: ConsumeMessage | null) => void {
  return (m) => {
    if (m) into.push(m.content.toString());
  };
}

/** Waits until the node's log, after `from`, contains `text`; returns that part of the log. */
async function logAfter(from: number, text: string): Promise<string> {
  return waitFor(
    () => {
      const part = node.logs().slice(from);
      return part.includes(text) ? part : '';
    },
    5_000,
    `"${text}" in the node's log`,
  );
}

const REFUSED_LOGIN =
  'Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."';

describe('the TLS listener', () => {
  test(
    'plain AMQP to the TLS port does not get a connection',
    withLogs(async () => {
      await expect(
        amqplib.connect(`amqp://guest:guest@127.0.0.1:${node.tlsPort}`, { timeout: 5_000 }),
      ).rejects.toThrow(/Socket closed abruptly during opening handshake|ECONNRESET/);
    }),
  );

  test(
    'AMQPS verified against the generated CA connects',
    withLogs(async () => {
      const conn = await amqplib.connect(`amqps://guest:guest@localhost:${node.tlsPort}`, {
        ca: [ca.cert],
        servername: 'localhost',
      });
      await conn.close();
    }),
  );

  test(
    'AMQPS without the CA fails the certificate check; so does a name the certificate does not hold',
    withLogs(async () => {
      // The listener sends its chain, CA included: an untrusted root in the chain.
      await expect(
        amqplib.connect(`amqps://guest:guest@localhost:${node.tlsPort}`),
      ).rejects.toMatchObject({
        code: 'SELF_SIGNED_CERT_IN_CHAIN',
      });
      await expect(
        amqplib.connect(`amqps://guest:guest@127.0.0.1:${node.tlsPort}`, {
          ca: [ca.cert],
          servername: 'broker.example',
        }),
      ).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    }),
  );
});

describe('partner access tokens', () => {
  test(
    'the scopes of scopes.ts (default vhost as %2F) let partner a consume its queue and reply under its name',
    withLogs(async () => {
      const from = node.logs().length;
      const before = jwksRequests;
      const conn = await connectWithToken(await token());
      // The broker fetched the JWKS for the token's key id; the username comes from `sub`.
      expect(jwksRequests).toBeGreaterThan(before);
      await logAfter(from, "user 'partner-a' authenticated and granted access to vhost '/'");

      const ch = await channel(conn);
      const received: string[] = [];
      await ch.consume(commandQueue('a'), collect(received), { noAck: true });
      adminChannel.publish(COMMANDS_EXCHANGE, 'a', Buffer.from('command for a'));
      await waitFor(() => received.length === 1, 5_000, 'the command');
      expect(received).toEqual(['command for a']);

      await adminChannel.purgeQueue(REPLIES_QUEUE);
      await reply(ch, 'a', 'reply from a');
      const got = await waitFor(
        async () => (await adminChannel.get(REPLIES_QUEUE, { noAck: true })) || undefined,
        5_000,
        'the reply',
      );
      expect(got.content.toString()).toBe('reply from a');
      expect(got.fields.routingKey).toBe('a');
    }),
  );

  test(
    'the username is not checked: the token alone decides (here after the internal backend refused guest)',
    withLogs(async () => {
      const from = node.logs().length;
      await connectWithToken(await token(), 'guest');
      await logAfter(from, "user 'partner-a' authenticated");
    }),
  );

  test(
    'the vhost must be URL-encoded: a scope with a literal "/" grants no access to the default vhost',
    withLogs(async () => {
      const from = node.logs().length;
      // The login succeeds (a valid token), connection.open to vhost "/" is refused.
      await expect(
        connectWithToken(await token({ scope: 'rabbitmq.read://partner.a.commands' })),
      ).rejects.toThrow('Expected ConnectionOpenOk; got <ConnectionClose channel:0>');
      await logAfter(from, "access to vhost '/' refused for user 'partner-a'");
    }),
  );

  test(
    "partner a may not consume partner b's queue: its channel is closed with 403",
    withLogs(async () => {
      const conn = await connectWithToken(await token());
      const ch = await channel(conn);
      const err = await channelError(ch, () => ch.consume(commandQueue('b'), () => {}));
      expect(err.code).toBe(403);
      expect(err.message).toBe(
        `Channel closed by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - access to queue 'partner.b.commands' in vhost '/' refused for user 'partner-a'"`,
      );
      // The connection stays usable.
      const other = await channel(conn);
      await reply(other, 'a', 'still here');
    }),
  );

  test(
    "partner a may not reply under b's routing key (topic permission) nor publish commands",
    withLogs(async () => {
      const conn = await connectWithToken(await token());
      const ch = await channel(conn);
      const topic = await channelError(ch, () => reply(ch, 'b', 'reply in b’s name'));
      expect(topic.code).toBe(403);
      expect(topic.message).toBe(
        `Channel closed by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - access to topic 'b' in exchange 'smart-home.replies' in vhost '/' refused for user 'partner-a'"`,
      );
      const commands = await channel(conn);
      const exchange = await channelError(commands, async () => {
        commands.publish(COMMANDS_EXCHANGE, 'a', Buffer.from('x'));
        await commands.waitForConfirms();
      });
      expect(exchange.message).toBe(
        `Channel closed by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - access to exchange 'smart-home.commands' in vhost '/' refused for user 'partner-a'"`,
      );
    }),
  );

  // The client sees the same refusal for every reason; the broker's log says which.
  test.each([
    [
      'no token (empty password)',
      () => Promise.resolve(''),
      'PLAIN login refused: Authentication using an OAuth 2/JWT token failed: provided token is invalid',
    ],
    [
      'a signature by another key under the same key id',
      () => token({ key: otherKey }),
      'PLAIN login refused: Authentication using an OAuth 2/JWT token failed: signature_invalid',
    ],
    [
      'an unknown key id',
      () => token({ kid: 'unknown-key', key: otherKey }),
      'PLAIN login refused: Authentication using an OAuth 2/JWT token failed: {error,key_not_found}',
    ],
    [
      'another audience',
      () => token({ audience: 'someone-else' }),
      'PLAIN login refused: Authentication using an OAuth 2/JWT token failed: {invalid_aud,',
    ],
    [
      'an expired token',
      () => token({ expiresAt: nowSeconds() - 60 }),
      'PLAIN login refused: Authentication using an OAuth 2/JWT token failed: "Provided JWT token has expired at timestamp',
    ],
  ])('refused at connect: %s', (_what, make, logged) =>
    withLogs(async () => {
      const from = node.logs().length;
      await expect(connectWithToken(await make())).rejects.toThrow(REFUSED_LOGIN);
      await logAfter(from, logged);
    })(),
  );

  test(
    'an unknown key id makes the broker fetch the JWKS again',
    withLogs(async () => {
      const before = jwksRequests;
      await expect(
        connectWithToken(await token({ kid: 'another-unknown-key', key: otherKey })),
      ).rejects.toThrow(REFUSED_LOGIN);
      expect(jwksRequests).toBe(before + 1);
    }),
  );
});

describe('token expiry and update-secret', () => {
  test(
    'at expiry the connection stays open and its consumer keeps receiving, but every new operation is refused; update-secret with a fresh token keeps it working',
    withLogs(async () => {
      const expiresAt = nowSeconds() + 4;
      const expiring = await connectWithToken(await token({ partner: 'expiring', expiresAt }));
      const refreshed = await connectWithToken(await token({ partner: 'refreshed', expiresAt }));
      let expiringClosed = false;
      expiring.on('close', () => (expiringClosed = true));
      const channels = { expiring: await channel(expiring), refreshed: await channel(refreshed) };
      const received: Record<'expiring' | 'refreshed', string[]> = { expiring: [], refreshed: [] };
      await channels.expiring.consume(commandQueue('expiring'), collect(received.expiring), {
        noAck: true,
      });
      await channels.refreshed.consume(commandQueue('refreshed'), collect(received.refreshed), {
        noAck: true,
      });
      // Both channels have published before the expiry: no permission cached then outlives it.
      await reply(channels.expiring, 'expiring', 'in time');
      await reply(channels.refreshed, 'refreshed', 'in time');

      const from = node.logs().length;
      await refreshed.updateSecret(Buffer.from(await token({ partner: 'refreshed' })), 'refresh');
      await logAfter(from, "user 'partner-refreshed' updated secret, reason: refresh");

      await waitFor(
        () => Date.now() > (expiresAt + 1.5) * 1000,
        10_000,
        'the first tokens to expire',
      );
      for (const partner of ['expiring', 'refreshed'] as const) {
        adminChannel.publish(
          COMMANDS_EXCHANGE,
          partner,
          Buffer.from(`after expiry for ${partner}`),
        );
      }
      await waitFor(
        () => received.expiring.length === 1 && received.refreshed.length === 1,
        5_000,
        'both commands',
      );
      expect(expiringClosed).toBe(false);

      // The expired connection: publishing and consuming are refused, naming the expiry.
      const expired = `backend rabbit_auth_backend_oauth2 returned an error: "Provided JWT token has expired at timestamp ${expiresAt}`;
      const publishError = await channelError(channels.expiring, () =>
        reply(channels.expiring, 'expiring', 'late'),
      );
      expect(publishError.code).toBe(403);
      expect(publishError.message).toContain(
        `ACCESS_REFUSED - access to exchange 'smart-home.replies' in vhost '/' refused for user 'partner-expiring', ${expired}`,
      );
      const consumer = await channel(expiring);
      const consumeError = await channelError(consumer, () =>
        consumer.consume(commandQueue('expiring'), () => {}),
      );
      expect(consumeError.message).toContain(
        `ACCESS_REFUSED - access to queue 'partner.expiring.commands' in vhost '/' refused for user 'partner-expiring', ${expired}`,
      );
      expect(expiringClosed).toBe(false);

      // The refreshed one goes on as before: same consumer, new replies, new consumers.
      await reply(channels.refreshed, 'refreshed', 'on time');
      const more = await channel(refreshed);
      await more.consume(commandQueue('refreshed'), () => {});
    }),
    30_000,
  );

  test(
    'update-secret with an invalid token (wrong audience) closes the connection with 530 NOT_ALLOWED',
    withLogs(async () => {
      const conn = await connectWithToken(await token({ partner: 'bad-refresh' }));
      const closed = new Promise<Error & { code?: number }>((resolve) =>
        conn.once('close', resolve),
      );
      // amqplib's promise never settles when the broker answers with connection.close.
      void conn.updateSecret(
        Buffer.from(await token({ partner: 'bad-refresh', audience: 'someone-else' })),
        'refresh',
      );
      const err = await closed;
      expect(err.code).toBe(530);
      expect(err.message).toBe(
        'Connection closed: 530 (NOT-ALLOWED) with message "NOT_ALLOWED - New secret was refused by one of the backends"',
      );
    }),
  );

  test(
    'update-secret with an expired token is accepted; the connection then fails as expired',
    withLogs(async () => {
      const conn = await connectWithToken(await token({ partner: 'late-refresh' }));
      const expiresAt = nowSeconds() - 5;
      await conn.updateSecret(
        Buffer.from(await token({ partner: 'late-refresh', expiresAt })),
        'refresh',
      );
      const ch = await channel(conn);
      const err = await channelError(ch, () => reply(ch, 'late-refresh', 'late'));
      expect(err.message).toContain(`Provided JWT token has expired at timestamp ${expiresAt}`);
    }),
  );

  test(
    "update-secret with another partner's token is accepted and takes that token's scopes",
    withLogs(async () => {
      const conn = await connectWithToken(await token({ partner: 'switch' }));
      await conn.updateSecret(Buffer.from(await token({ partner: 'b' })), 'refresh');
      const ch = await channel(conn);
      await ch.consume(commandQueue('b'), () => {});
      const other = await channel(conn);
      const err = await channelError(other, () => other.consume(commandQueue('switch'), () => {}));
      // The connection keeps its first user name.
      expect(err.message).toContain(
        `access to queue 'partner.switch.commands' in vhost '/' refused for user 'partner-switch'`,
      );
    }),
  );
});

describe('the node harness', () => {
  /** Running processes among `pids` (a zombie waiting for init counts as gone). */
  const running = (pids: number[]) =>
    pids.filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat[stat.lastIndexOf(')') + 2] !== 'Z';
      } catch {
        return false;
      }
    });

  test(
    'a second node runs alongside the first; stop() leaves none of its processes and no dir',
    withLogs(async () => {
      const second = await startRabbitNode();
      expect(second.nodeName).not.toBe(node.nodeName);
      expect(second.port).not.toBe(node.port);
      const conn = await amqplib.connect(second.amqpUrl);
      await conn.close();
      const pids = [second.pid, ...(await descendants(second.pid))];
      expect(running(pids)).toEqual(pids);

      await second.stop();
      expect(running(pids)).toEqual([]);
      expect(existsSync(second.dir)).toBe(false);
      expect(second.logs()).toContain('Starting RabbitMQ 3.');
      // The first node is untouched.
      await (await amqplib.connect(node.amqpUrl)).close();
    }),
    90_000,
  );
});
