// The Helm chart as the tests render it: its folder, the production-like values file, and the
// objects `helm template` renders for a set of arguments.
import path from 'node:path';
import { helm, mustRun, ROOT } from './tools.js';
import { parseYamlDocs, type KubeObject } from './kube-schemas.js';

export const CHART = path.join(ROOT, 'charts/integration-hub');
export const PRODUCTION = path.join(CHART, 'ci/production-values.yaml');

/** The chart's objects for release `hub` in namespace `hub`, with `args` (`-f`, `--set`, …). */
export async function renderChart(args: string[] = []): Promise<KubeObject[]> {
  return parseYamlDocs(
    await mustRun(await helm(), ['template', 'hub', CHART, '--namespace', 'hub', ...args]),
  );
}
