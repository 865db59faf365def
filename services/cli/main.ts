// The `hub` operator CLI: migrate the database, apply integration resources from YAML, list or
// replay failed work, list/show/replay/purge dead letters, manage API keys, and write the partners' Keycloak realm.
import { Command, InvalidArgumentError, Option } from 'commander';
import { allioEnv, amqpEnv, databaseEnv, loadConfig, ConfigError } from '../core/config.js';
import { mountedSecretReader } from '../domains/allio/integrations.js';
import { createDb, type Db } from '../core/db.js';
import { migrate } from '../core/migrate.js';
import { applyResources, validateResources, type Applied } from './apply.js';
import { readResourceFiles } from './resource-files.js';
import { countTasks, listTasks, retryTasks, TASK_STATUS } from './tasks.js';
import { cliEnvironment, explainDatabaseError } from './environment.js';
import { deadLetterCommands } from './dead-letters.js';
import {
  countRequests,
  listRequests,
  replayFailedRequests,
} from '../domains/smart-home/requests.js';
import { createApiKey, listApiKeys, revokeApiKey } from '../core/auth/api-keys.js';
import { KITCHEN_ROLES } from '../domains/kitchen/permissions.js';
import { AuthClientStore } from '../domains/partner-access/clients.js';
import { partnerScopeEnv } from '../domains/partner-access/scopes.js';
import { TOKEN_EVENTS } from '../domains/partner-access/audit.js';
import { keycloakRealm, realmFileText } from '../domains/partner-access/keycloak-realm.js';
import { DEFAULT_RESOURCE_SERVER_ID } from '../domains/partner-access/scopes.js';
import type { SmartHomePartnerResource } from '../contracts/smart-home-partner.js';
import type { PartnerTopology } from '../contracts/smart-home-topology.js';
import { applyPartnerTopologies } from './partner-topology.js';
import { devIdpEnv, fetchDevToken } from './dev-token.js';
import { REQUEST_STATES, type RequestState } from '../domains/smart-home/domain.js';

/** The environment: in a checkout, npm start's defaults under what is set (environment.ts). */
const env = cliEnvironment();

/** The vhost and resource server id that partners' RabbitMQ scopes name. */
function partnerScopeSettings() {
  const c = loadConfig(partnerScopeEnv, env);
  return { vhost: c.RABBITMQ_PARTNER_VHOST, resourceServerId: c.RABBITMQ_RESOURCE_SERVER_ID };
}

/**
 * Declares the applied active partners' queues on RabbitMQ (AMQP_URL), so that a partner can
 * consume its queue as soon as apply returns, and unbinds the inactive ones'. Without AMQP_URL the
 * running mq-bridge declares new queues when the database notifies it of the change (within moments).
 */
async function applyPartnerQueues(partners: Applied['partnerQueues']): Promise<void> {
  if (partners.declare.length + partners.unbind.length === 0) return;
  const { AMQP_URL } = loadConfig(amqpEnv.partial());
  const names = (ps: PartnerTopology[]) => ps.map((p) => p.commandQueue).join(', ');
  if (!AMQP_URL) {
    if (partners.declare.length) {
      console.error(
        `AMQP_URL is not set: the running mq-bridge declares ${names(partners.declare)} as soon as it learns of the change`,
      );
    }
    if (partners.unbind.length) {
      console.error(
        `AMQP_URL is not set: ${names(partners.unbind)} stay bound until unbound on RabbitMQ`,
      );
    }
    return;
  }
  await applyPartnerTopologies(AMQP_URL, partners);
  if (partners.declare.length) console.log(`declared on RabbitMQ: ${names(partners.declare)}`);
  if (partners.unbind.length) {
    console.log(`unbound on RabbitMQ (inactive): ${names(partners.unbind)}`);
  }
}

async function withDb<T>(fn: (db: Db, schema: string) => Promise<T>): Promise<T> {
  const config = loadConfig(databaseEnv, env);
  const db = createDb(config, { applicationName: 'hub-cli' });
  try {
    return await fn(db, config.DATABASE_SCHEMA);
  } catch (thrown) {
    throw explainDatabaseError(thrown, config);
  } finally {
    await db.destroy();
  }
}

const program = new Command()
  .name('hub')
  .description(
    "Integration Hub operator commands (reads DATABASE_URL and DATABASE_SCHEMA; in a checkout, npm start's database and schema `hub` unless they are set)",
  )
  .showHelpAfterError();

program
  .command('migrate')
  .description('apply pending database migrations (safe to run from several pods at once)')
  .action(async () => {
    await withDb(async (db, schema) => {
      const r = await migrate(db, schema);
      console.log(
        r.applied.length ? `applied: ${r.applied.join(', ')}` : `schema ${schema} is up to date`,
      );
    });
  });

program
  .command('apply')
  .description(
    'create or update resources (AllioIntegration, SmartHomePartner with its OAuth client) from YAML; "-" reads stdin',
  )
  .requiredOption(
    '-f, --filename <paths...>',
    'YAML files or directories of them, with one or more resources each',
  )
  .action(async (opts: { filename: string[] }) => {
    const docs = await readResourceFiles(opts.filename, readStdin);
    await withDb(async (db) => {
      const readSecret = mountedSecretReader(
        loadConfig(allioEnv.pick({ SECRETS_DIR: true }), env).SECRETS_DIR,
      );
      const applied = await applyResources(db, docs, {
        partnerScopes: partnerScopeSettings(),
        readSecret,
      });
      for (const line of applied.lines) console.log(line);
      await applyPartnerQueues(applied.partnerQueues);
    });
  });

program
  .command('keycloak-realm')
  .description(
    'print the Keycloak realm (for kc.sh --import-realm) of the active SmartHomePartner resources; other kinds are ignored',
  )
  .requiredOption('-f, --filename <paths...>', 'YAML files or directories of them; "-" reads stdin')
  .option('--realm <name>', 'realm name', 'integration-hub')
  .option('--vhost <vhost>', 'RabbitMQ virtual host of the partners', '/')
  .option(
    '--resource-server-id <id>',
    "RabbitMQ's auth_oauth2.resource_server_id",
    DEFAULT_RESOURCE_SERVER_ID,
  )
  .option('--token-lifespan <seconds>', 'access token lifetime', seconds(60, 86_400), 300)
  .action(
    async (opts: {
      filename: string[];
      realm: string;
      vhost: string;
      resourceServerId: string;
      tokenLifespan: number;
    }) => {
      const { valid, problems } = validateResources(
        await readResourceFiles(opts.filename, readStdin),
      );
      if (problems.length) throw new Error(`no realm written:\n  ${problems.join('\n  ')}`);
      const partners = valid.flatMap((v) =>
        v.resource.kind === 'SmartHomePartner' ? [v.resource as SmartHomePartnerResource] : [],
      );
      const realm = keycloakRealm(partners, {
        realm: opts.realm,
        vhost: opts.vhost,
        resourceServerId: opts.resourceServerId,
        accessTokenLifespanSeconds: opts.tokenLifespan,
      });
      process.stdout.write(realmFileText(realm));
    },
  );

const tasks = program.command('tasks').description('inspect and replay ALLIO sync tasks');
tasks
  .command('list')
  .description('the most recent tasks of every state (or of one), after a count per state')
  .addOption(
    new Option('-s, --status <status>', 'only tasks in this status')
      .choices([...Object.keys(TASK_STATUS), 'all'])
      .default('all'),
  )
  .option('-i, --integration <name>', 'only this integration')
  .option('-l, --limit <n>', 'at most this many rows', (v) => Number.parseInt(v, 10), 50)
  .option('--json', 'one JSON object per line (rows only)')
  .action(async (opts: { status: string; integration?: string; limit: number; json?: boolean }) => {
    await withDb(async (db) => {
      const rows = await listTasks(db, opts);
      if (opts.json) {
        for (const r of rows) console.log(JSON.stringify(r));
        return;
      }
      console.log(countLine('task', await countTasks(db, opts)));
      if (rows.length === 0) {
        console.log(opts.status === 'all' ? 'no tasks' : `no ${opts.status} tasks`);
      } else {
        console.table(rows.map((r) => ({ ...r, last_error: r.last_error?.slice(0, 80) ?? '' })));
      }
    });
  });
tasks
  .command('retry')
  .description('re-queue failed tasks: the given ids, or every failed one with --all-failed')
  .argument('[ids...]', 'task ids')
  .option('--all-failed', 'every failed task (of --integration if given)')
  .option('-i, --integration <name>', 'only this integration')
  .action(async (ids: string[], opts: { allFailed?: boolean; integration?: string }) => {
    if (ids.length === 0 && !opts.allFailed) throw new Error('give task ids, or --all-failed');
    if (ids.some((id) => !/^\d+$/.test(id))) throw new Error('task ids are numbers');
    await withDb(async (db) => {
      const retried = await retryTasks(db, { ids, integration: opts.integration });
      console.log(
        retried.length
          ? `re-queued ${retried.length} task(s): ${retried.join(', ')}`
          : 'no failed task matched',
      );
    });
  });

const smartHome = program
  .command('smart-home')
  .description('inspect and replay smart-home connect/disconnect requests');
smartHome
  .command('list')
  .description(
    'the most recent connect/disconnect requests of every state (or of one), after a count per state',
  )
  .addOption(
    new Option('-s, --state <state>', 'only requests in this state')
      .choices([...REQUEST_STATES, 'all'])
      .default('all'),
  )
  .option('-l, --limit <n>', 'at most this many rows', (v) => Number.parseInt(v, 10), 50)
  .option('--json', 'one JSON object per line (rows only)')
  .action(async (opts: { state: RequestState | 'all'; limit: number; json?: boolean }) => {
    await withDb(async (db) => {
      const rows = await listRequests(db, {
        state: opts.state === 'all' ? undefined : opts.state,
        limit: opts.limit,
      });
      if (opts.json) {
        for (const r of rows) console.log(JSON.stringify(r));
        return;
      }
      console.log(countLine('request', await countRequests(db)));
      if (rows.length === 0) {
        console.log(opts.state === 'all' ? 'no requests' : `no ${opts.state} requests`);
      } else console.table(rows.map((r) => ({ ...r, lastError: r.lastError?.slice(0, 80) ?? '' })));
    });
  });
smartHome
  .command('retry')
  .description(
    "re-send failed requests: the given request ids, or every subscription's failed latest request with --all-failed",
  )
  .argument('[ids...]', 'request ids (UUIDs)')
  .option('--all-failed', "every failed request that is its subscription's latest")
  .action(async (ids: string[], opts: { allFailed?: boolean }) => {
    if (ids.length === 0 && !opts.allFailed) throw new Error('give request ids, or --all-failed');
    if (ids.some((id) => !/^[0-9a-f-]{36}$/i.test(id))) throw new Error('request ids are UUIDs');
    await withDb(async (db) => {
      const retried = await replayFailedRequests(db, { requestIds: ids });
      console.log(
        retried.length
          ? `re-queued ${retried.length} request(s): ${retried.join(', ')}`
          : 'no failed request matched',
      );
    });
  });

program.addCommand(deadLetterCommands((fn) => withDb((db) => fn(db)), env));

const apiKeys = program
  .command('api-keys')
  .description('API keys of machine clients (kitchen terminals, back office)');
const MACHINE_ROLES = KITCHEN_ROLES.filter((r) => r !== 'tenant');
apiKeys
  .command('create')
  .description('create a key; it is printed once and only its hash is stored')
  .requiredOption('-n, --name <name>', 'who uses the key, e.g. "kitchen terminal 3"')
  .requiredOption('-r, --role <role...>', `roles: ${MACHINE_ROLES.join(', ')}`)
  .action(async (opts: { name: string; role: string[] }) => {
    const unknown = opts.role.filter((r) => !(MACHINE_ROLES as readonly string[]).includes(r));
    if (unknown.length) {
      throw new Error(`unknown role ${unknown.join(', ')}; roles are ${MACHINE_ROLES.join(', ')}`);
    }
    await withDb(async (db) => {
      const { id, key } = await createApiKey(db, opts.name, opts.role);
      console.error(
        `created key ${id} for "${opts.name}" (${opts.role.join(', ')}); store it now, it cannot be shown again:`,
      );
      console.log(key);
    });
  });
apiKeys
  .command('list')
  .description('list keys (never their secrets)')
  .option('--json', 'one JSON object per line')
  .action(async (opts: { json?: boolean }) => {
    await withDb(async (db) => {
      const rows = await listApiKeys(db);
      if (opts.json) for (const r of rows) console.log(JSON.stringify(r));
      else if (rows.length === 0) console.log('no keys');
      else console.table(rows.map((r) => ({ ...r, roles: r.roles.join(' ') })));
    });
  });
apiKeys
  .command('revoke')
  .description('revoke a key at once')
  .argument('<id>', 'the key id (the part after hk_)')
  .action(async (id: string) => {
    await withDb(async (db) => {
      if (!(await revokeApiKey(db, id))) throw new Error(`no key ${id}`);
      console.log(`revoked ${id}`);
    });
  });

const auth = program
  .command('auth')
  .description('partner clients of the development authorization server and their token events');
auth
  .command('clients')
  .description('list partner clients (never their secrets)')
  .option('--json', 'one JSON object per line')
  .action(async (opts: { json?: boolean }) => {
    await withDb(async (db) => {
      const rows = (await new AuthClientStore(db, partnerScopeSettings()).list()).map(
        ({ secret_hash, ...r }) => ({ ...r, has_secret: secret_hash !== null }),
      );
      if (opts.json) for (const r of rows) console.log(JSON.stringify(r));
      else if (rows.length === 0) {
        console.log('no clients; `hub apply -f` a SmartHomePartner creates one');
      } else console.table(rows.map((r) => ({ ...r, scopes: r.scopes.join(' ') })));
    });
  });
auth
  .command('secret')
  .description(
    'issue a new client secret (the previous one stops working); it is printed once and only its hash is stored',
  )
  .argument('<clientId>', "the partner's client id")
  .action(async (clientId: string) => {
    await withDb(async (db) => {
      const secret = await new AuthClientStore(db, partnerScopeSettings()).rotateSecret(clientId);
      console.error(
        `new secret for ${clientId}; hand it to the partner now, it cannot be shown again:`,
      );
      console.log(secret);
    });
  });
auth
  .command('events')
  .description('recent token requests: issued tokens and failures, newest first')
  .option('-c, --client <clientId>', 'only this client')
  .option('--failures', 'only failed requests')
  .option('-l, --limit <n>', 'at most this many rows', (v) => Number.parseInt(v, 10), 50)
  .option('--json', 'one JSON object per line')
  .action(async (opts: { client?: string; failures?: boolean; limit: number; json?: boolean }) => {
    await withDb(async (db) => {
      const q = db(TOKEN_EVENTS)
        .select('at', 'client_id', 'source_address', 'outcome', 'scope', 'token_id', 'error')
        .orderBy('id', 'desc')
        .limit(opts.limit);
      if (opts.client) void q.where({ client_id: opts.client });
      if (opts.failures) void q.whereNot({ outcome: 'issued' });
      const rows = (await q) as Array<Record<string, unknown>>;
      if (opts.json) for (const r of rows) console.log(JSON.stringify(r));
      else if (rows.length === 0) console.log('no token events');
      else console.table(rows);
    });
  });

const dev = program
  .command('dev')
  .description('development helpers for a hub started with `npm start`');
dev
  .command('token')
  .description(
    "print a tenant's access token from the development identity provider (for the tenant API: Authorization: Bearer <token>)",
  )
  .requiredOption('-t, --tenant <id>', "the tenant id (the token's subject)")
  .option(
    '--idp-url <url>',
    'the development identity provider (default http://127.0.0.1:$TENANT_IDP_PORT, port 4020)',
  )
  .option('--ttl <seconds>', 'token lifetime', seconds(60, 86_400), 3600)
  .action(async (opts: { tenant: string; idpUrl?: string; ttl: number }) => {
    const idpUrl = opts.idpUrl ?? `http://127.0.0.1:${loadConfig(devIdpEnv).TENANT_IDP_PORT}`;
    console.log(await fetchDevToken(idpUrl, opts.tenant, opts.ttl));
  });

/** `12 tasks: 2 new, 0 in-progress, 9 done, 1 failed`: every state, so an empty one is seen too. */
function countLine(noun: string, counts: Record<string, number>): string {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return `${total} ${noun}${total === 1 ? '' : 's'}: ${Object.entries(counts)
    .map(([state, n]) => `${n} ${state}`)
    .join(', ')}`;
}

function seconds(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`a whole number of seconds from ${min} to ${max}`);
    }
    return n;
  };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(
    err instanceof ConfigError
      ? err.message
      : `error: ${err instanceof Error ? err.message : String(err)}`,
  );
  process.exitCode = 1;
});
