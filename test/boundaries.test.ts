// The layer rules `npm run boundaries` enforces, shown to fire: a small tree with one breach of
// each rule is cruised with the repository's own configuration, and every breach is reported
// under its rule's name, while the same tree without the breaches passes.
import { describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CRUISE = join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruiser.mjs');

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

/** Writes `files` (path → imports) into a fresh tree and cruises its services/ folder. */
function cruise(files: Record<string, string[]>): Violation[] {
  const dir = mkdtempSync(join(tmpdir(), 'hub-boundaries-'));
  try {
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', strict: true },
      }),
    );
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ type: 'module', devDependencies: { 'dev-only': '1.0.0' } }),
    );
    mkdirSync(join(dir, 'node_modules/dev-only'), { recursive: true });
    writeFileSync(
      join(dir, 'node_modules/dev-only/package.json'),
      JSON.stringify({ name: 'dev-only', version: '1.0.0', main: 'index.js' }),
    );
    writeFileSync(join(dir, 'node_modules/dev-only/index.js'), 'module.exports = 1;\n');
    for (const [path, imports] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      const lines = imports.map(
        (spec, i) => `import * as m${i} from '${spec}';\nexport const u${i} = m${i};`,
      );
      writeFileSync(join(dir, path), `${lines.join('\n')}\nexport const here = 1;\n`);
    }
    // It exits 1 when it finds a breach; the report is on stdout either way.
    const { stdout } = spawnSync(
      process.execPath,
      [
        CRUISE,
        'services',
        '--config',
        join(ROOT, '.dependency-cruiser.cjs'),
        '--output-type',
        'json',
      ],
      { cwd: dir, encoding: 'utf8' },
    );
    return (JSON.parse(stdout) as { summary: { violations: Violation[] } }).summary.violations;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const LEGAL: Record<string, string[]> = {
  'services/core/a.ts': ['./b.js'],
  'services/core/b.ts': [],
  'services/contracts/c.ts': ['../core/b.js'],
  'services/domains/shop/d.ts': ['../../core/a.js', '../../contracts/c.js', './e.js'],
  'services/domains/shop/e.ts': [],
  'services/api/main.ts': ['../domains/shop/d.js', '../core/a.js'],
  'services/worker/main.ts': ['../domains/shop/d.js'],
  'services/hub/main.ts': ['../api/main.js', '../simulators/sim/main.js'],
  'services/simulators/sim/main.ts': ['../../contracts/c.js', '../kit.js'],
  'services/simulators/kit.ts': [],
  'services/domains/shop/d.test.ts': ['../../../test/fixture.js', '../../api/main.js', 'dev-only'],
  'test/fixture.ts': [],
};

describe('layer boundaries (.dependency-cruiser.cjs)', () => {
  test('a tree that keeps to the layers passes', () => {
    expect(cruise(LEGAL)).toEqual([]);
  }, 60_000);

  test('each breach is reported under its rule', () => {
    const breaches: Record<string, string[]> = {
      'services/core/up.ts': ['../api/main.js'],
      'services/contracts/up.ts': ['../domains/shop/e.js'],
      'services/domains/shop/sideways.ts': ['../other/f.js'],
      'services/domains/shop/up.ts': ['../../api/main.js'],
      'services/domains/other/f.ts': [],
      'services/api/sideways.ts': ['../mq-bridge/main.js'],
      'services/mq-bridge/main.ts': [],
      'services/simulators/sim/peek.ts': ['../../core/a.js'],
      'services/api/fixture.ts': ['../../test/fixture.js'],
      'services/api/dev.ts': ['dev-only'],
      'services/core/x.ts': ['./y.js'],
      'services/core/y.ts': ['./x.js'],
    };
    const found = cruise({ ...LEGAL, ...breaches }).map(
      (v) => `${v.rule.name}: ${v.from} -> ${v.to}`,
    );
    expect(found.sort()).toEqual([
      'contracts-import-only-core: services/contracts/up.ts -> services/domains/shop/e.ts',
      'core-is-the-bottom: services/core/up.ts -> services/api/main.ts',
      'deployable-never-imports-a-deployable: services/api/sideways.ts -> services/mq-bridge/main.ts',
      'domain-imports-only-core-and-contracts: services/domains/shop/sideways.ts -> services/domains/other/f.ts',
      'domain-imports-only-core-and-contracts: services/domains/shop/up.ts -> services/api/main.ts',
      'no-circular: services/core/x.ts -> services/core/y.ts',
      'production-code-never-imports-tests: services/api/fixture.ts -> test/fixture.ts',
      'production-code-uses-production-dependencies: services/api/dev.ts -> node_modules/dev-only/index.js',
      'simulators-know-only-contracts: services/simulators/sim/peek.ts -> services/core/a.ts',
    ]);
  }, 60_000);
});
