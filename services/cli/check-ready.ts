// `helm test` probe: asks /readyz of every URL in CHECK_URLS (comma-separated) and exits 0 only
// when each answers 200, printing one line per service so a failed test says which one is down.
import { z } from 'zod';
import { loadConfig } from '../core/config.js';

const env = z.object({
  CHECK_URLS: z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((u) => u.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.string().url()).min(1, 'must list at least one URL')),
  CHECK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(5_000),
});

export async function checkReady(
  urls: string[],
  timeoutMs: number,
): Promise<{ url: string; ok: boolean; detail: string }[]> {
  return Promise.all(
    urls.map(async (url) => {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
        const body = await res.text();
        return { url, ok: res.status === 200, detail: `${res.status} ${body.slice(0, 200)}` };
      } catch (thrown) {
        return {
          url,
          ok: false,
          detail: thrown instanceof Error ? thrown.message : String(thrown),
        };
      }
    }),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const config = loadConfig(env);
  const results = await checkReady(config.CHECK_URLS, config.CHECK_TIMEOUT_MS);
  for (const r of results) console.log(`${r.ok ? 'ready    ' : 'NOT READY'} ${r.url} ${r.detail}`);
  process.exitCode = results.every((r) => r.ok) ? 0 : 1;
}
