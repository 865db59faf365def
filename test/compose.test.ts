// compose.yaml, the servers for machines with Docker or Podman: it cannot run here (no container
// engine), so it is read: the three servers, on the ports and with the credentials npm start uses
// by default, at the versions of the servers the tests run against.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { parse } from 'yaml';
import { AMQP_URL, DATABASE_URL, REDIS_URL } from './support/context.js';
import { ROOT } from './support/tools.js';
import {
  LOCAL_DEFAULTS,
  LOCAL_SERVERS,
  probeLocalServers,
  type LocalServer,
} from '../services/core/local-servers.js';

interface ComposeService {
  image: string;
  ports?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
}

const compose = async () =>
  parse(await readFile(path.join(ROOT, 'compose.yaml'), 'utf8')) as {
    services: Record<string, ComposeService>;
  };

const DEFAULT_URL: Record<LocalServer, string> = {
  postgres: LOCAL_DEFAULTS.DATABASE_URL ?? '',
  redis: LOCAL_DEFAULTS.REDIS_URL ?? '',
  rabbitmq: LOCAL_DEFAULTS.AMQP_URL ?? '',
};

/** The image's tag, e.g. `15-bookworm` -> `15`, `3.10-management` -> `3.10`. */
const tagVersion = (image: string) => /:(\d+(?:\.\d+)?)/.exec(image)?.[1];

describe('compose.yaml', () => {
  test('runs exactly PostgreSQL, Redis and RabbitMQ, each published on 127.0.0.1 at the port npm start uses, with a healthcheck', async () => {
    const { services } = await compose();
    expect(Object.keys(services).sort()).toEqual(['postgres', 'rabbitmq', 'redis']);
    for (const server of Object.keys(LOCAL_SERVERS) as LocalServer[]) {
      const s = services[server];
      const port = new URL(DEFAULT_URL[server]).port;
      expect(port).toMatch(/^\d+$/);
      expect(s?.ports).toContain(`127.0.0.1:${port}:${port}`);
      // Nothing published beyond loopback.
      for (const p of s?.ports ?? []) expect(p.startsWith('127.0.0.1:')).toBe(true);
      expect(s?.healthcheck?.test[0]).toBe('CMD');
      expect(s?.image).toMatch(/^docker\.io\/library\//);
    }
  });

  test("PostgreSQL accepts npm start's password-less DATABASE_URL: user, database and trust match", async () => {
    const { services } = await compose();
    const url = new URL(DEFAULT_URL.postgres);
    expect(url.password).toBe('');
    expect(services.postgres?.environment).toMatchObject({
      POSTGRES_USER: url.username,
      POSTGRES_DB: url.pathname.slice(1),
      POSTGRES_HOST_AUTH_METHOD: 'trust',
    });
    // RabbitMQ's image creates guest/guest, the user of npm start's AMQP_URL.
    expect(new URL(DEFAULT_URL.rabbitmq)).toMatchObject({ username: 'guest', password: 'guest' });
  });

  test('pins the versions the tests run against: the servers on this machine, and the start-up hints', async () => {
    const { services } = await compose();
    const probes = await probeLocalServers({ DATABASE_URL, REDIS_URL, AMQP_URL });
    for (const p of probes) {
      if (!p.ok) throw new Error(`${p.server} of the tests does not answer: ${p.reason}`);
      const pinned = tagVersion(services[p.server]?.image ?? '');
      expect(pinned).toBe(LOCAL_SERVERS[p.server].version);
      // PostgreSQL is pinned by major (15), Redis and RabbitMQ by major.minor (7.0, 3.10).
      expect(`${p.version}.`.startsWith(`${pinned}.`)).toBe(true);
    }
  });
});
