// The image, as far as it can be checked without a Docker engine: the Dockerfile copies files that
// exist, runs as the non-root user the chart expects, and the compiled output it ships contains
// every entry point the chart starts, which runs.
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { parse as parseYaml } from 'yaml';
import { PENDING_ENTRY_POINTS } from '../support/pending.js';
import { mustRun, ROOT, run } from '../support/tools.js';

// Inside the repository so that the compiled code resolves node_modules as it does in /app.
const OUT = path.join(ROOT, 'node_modules/.cache/integration-hub-image-test');

let dockerfile: string;
let values: { services: Record<string, { entryPoint: string }>; podSecurityContext: { runAsUser: number; runAsGroup: number } };

beforeAll(async () => {
  dockerfile = await readFile(path.join(ROOT, 'Dockerfile'), 'utf8');
  values = parseYaml(await readFile(path.join(ROOT, 'charts/integration-hub/values.yaml'), 'utf8')) as typeof values;
  await rm(OUT, { recursive: true, force: true });
  // What `npm run build` compiles in the image's build stage, written beside the sources.
  await mustRun(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', OUT]);
}, 120_000);
afterAll(async () => {
  await rm(OUT, { recursive: true, force: true });
});

describe('image', () => {
  test('every file the Dockerfile copies from the build context exists', () => {
    const copies = [...dockerfile.matchAll(/^COPY (?!--from)(?:--\S+ )*(.+) \S+$/gm)].flatMap((m) => m[1]!.split(' '));
    expect(copies.length).toBeGreaterThan(3);
    for (const src of copies) expect({ src, exists: existsSync(path.join(ROOT, src)) }).toEqual({ src, exists: true });
  });

  test('it runs as the unprivileged user the chart\'s pod security context names, through tini and node', () => {
    const user = /^USER (\d+):(\d+)$/m.exec(dockerfile);
    expect(user?.slice(1).map(Number)).toEqual([values.podSecurityContext.runAsUser, values.podSecurityContext.runAsGroup]);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["\/usr\/bin\/tini", "--", "node"\]$/m);
    // Production dependencies only in the final stage.
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
  });

  test('the compiled output holds every entry point the chart starts, plus the migration and helm test commands', () => {
    const entryPoints = Object.entries(values.services)
      .filter(([svc]) => !PENDING_ENTRY_POINTS.includes(svc))
      .map(([, s]) => s.entryPoint);
    expect(entryPoints.length).toBeGreaterThanOrEqual(3);
    for (const e of [...entryPoints, 'dist/services/cli/main.js', 'dist/services/cli/check-ready.js']) {
      const built = path.join(OUT, e.replace(/^dist\//, ''));
      expect({ e, built: existsSync(built) }).toEqual({ e, built: true });
    }
  });

  test('the compiled helm test command passes on ready services and fails naming the one that is not', async () => {
    const server = http.createServer((req, res) => {
      res.writeHead(req.url === '/ready/readyz' ? 200 : 503);
      res.end(req.url === '/ready/readyz' ? '{"status":"ready"}' : '{"status":"not_ready"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const script = path.join(OUT, 'services/cli/check-ready.js');
      const env = { PATH: process.env.PATH ?? '' };
      const ok = await run(process.execPath, [script], { env: { ...env, CHECK_URLS: `${base}/ready/readyz` } });
      expect(ok.code).toBe(0);
      const bad = await run(process.execPath, [script], { env: { ...env, CHECK_URLS: `${base}/ready/readyz,${base}/down/readyz` } });
      expect(bad.code).toBe(1);
      expect(bad.stdout).toContain(`NOT READY ${base}/down/readyz 503`);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
