// Checks rabbitmq.conf text the way the broker does at boot: cuttlefish maps it through the schemas
// of the RabbitMQ installed on this machine (rabbit's and the named plugins'), which refuses an
// unknown key, a value of the wrong type and a failed validator (an http JWKS URL, a missing file).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from './tools.js';

const RABBITMQ_LIB = '/usr/lib/rabbitmq/lib';

/** The plugins directory of the installed server (Debian's rabbitmq-server package). */
export async function rabbitmqPluginsDir(): Promise<string> {
  const servers = existsSync(RABBITMQ_LIB)
    ? (await readdir(RABBITMQ_LIB)).filter((d) => d.startsWith('rabbitmq_server-')).sort()
    : [];
  if (!servers.length) {
    throw new Error(
      `no RabbitMQ server under ${RABBITMQ_LIB}: install Debian's rabbitmq-server package`,
    );
  }
  return path.join(RABBITMQ_LIB, servers[servers.length - 1]!, 'plugins');
}

/** The directory of an installed plugin (or of rabbit itself), e.g. rabbitmq_auth_backend_oauth2-3.10.8. */
export async function pluginDir(name: string): Promise<string> {
  const dir = await rabbitmqPluginsDir();
  const found = (await readdir(dir)).find((d) => d.replace(/-[\d.]+$/, '') === name);
  if (!found) throw new Error(`RabbitMQ plugin ${name} is not installed in ${dir}`);
  return path.join(dir, found);
}

/**
 * Maps `conf` through the schemas of rabbit and `plugins`. Files the settings name under
 * /etc/rabbitmq/ (certificates, definitions) are stood in for by empty files in a temporary
 * directory, since the schemas check that they can be read.
 */
export async function checkRabbitConf(
  conf: string,
  plugins: string[],
): Promise<{ ok: boolean; output: string }> {
  const pluginsDir = await rabbitmqPluginsDir();
  const schemas = await Promise.all(
    ['rabbit', ...plugins].map(async (p) =>
      path.join(await pluginDir(p), 'priv/schema', `${p}.schema`),
    ),
  );
  const dir = await mkdtemp(path.join(tmpdir(), 'hub-rabbit-conf-'));
  try {
    const local = conf.replace(/\/etc\/rabbitmq\//g, `${dir}/`);
    for (const file of new Set(local.match(new RegExp(`${dir}/\\S+`, 'g')) ?? [])) {
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, '');
    }
    const confFile = path.join(dir, 'rabbitmq.conf');
    await writeFile(confFile, local);
    const ebins = (await readdir(pluginsDir))
      .map((d) => path.join(pluginsDir, d, 'ebin'))
      .filter((d) => existsSync(d));
    const erlString = (s: string) => JSON.stringify(s);
    const program = [
      `Schema = cuttlefish_schema:files([${schemas.map(erlString).join(', ')}]),`,
      `Conf = cuttlefish_conf:file(${erlString(confFile)}),`,
      'case cuttlefish_generator:map(Schema, Conf) of',
      '  {error, Phase, {errorlist, Errors}} -> io:format("~p: ~p~n", [Phase, Errors]), halt(1);',
      '  Config -> io:format("~p~n", [Config]), halt(0)',
      'end.',
    ].join('\n');
    const r = await run('erl', ['-noshell', '-pa', ...ebins, '-eval', program]);
    return { ok: r.code === 0, output: `${r.stdout}${r.stderr}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
