// The boundaries of the source tree, checked by `npm run lint` (part of `npm test`).
// Layers, bottom up: core (the platform), contracts (what partners, tenants and simulators see
// on the wire), domains (state machines, SQL, caches of one business area), deployables (one
// process each: entry point, config, wiring). services/hub is the local all-in-one process of
// `npm start` and may compose everything; it is not shipped in the image.
const DEPLOYABLES = 'api|mq-bridge|kitchen|allio-sync|auth|operator|cli';
// A test may reach any fixture it needs; the rules hold for the code that ships and runs.
const TESTS = '\\.test\\.ts$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'core-is-the-bottom',
      comment:
        'services/core is the platform every other folder builds on: it imports only itself.',
      severity: 'error',
      from: { path: '^services/core/', pathNot: TESTS },
      to: { path: '^(services|test|bench|docs)/', pathNot: '^services/core/' },
    },
    {
      name: 'contracts-import-only-core',
      comment:
        'A published contract depends on nothing but the platform helpers it validates with.',
      severity: 'error',
      from: { path: '^services/contracts/', pathNot: TESTS },
      to: { path: '^(services|test|bench|docs)/', pathNot: '^services/(core|contracts)/' },
    },
    {
      name: 'domain-imports-only-core-and-contracts',
      comment: 'A domain library never reaches into a deployable or into another domain.',
      severity: 'error',
      from: { path: '^services/domains/([^/]+)/', pathNot: TESTS },
      to: {
        path: '^(services|test|bench|docs)/',
        pathNot: '^services/(core|contracts|domains/$1)/',
      },
    },
    {
      name: 'deployable-never-imports-a-deployable',
      comment:
        'A deployable is a composition root: shared code belongs in core, contracts or a domain.',
      severity: 'error',
      from: { path: `^services/(${DEPLOYABLES})/`, pathNot: TESTS },
      to: { path: `^services/(${DEPLOYABLES}|hub|simulators)/`, pathNot: '^services/$1/' },
    },
    {
      name: 'simulators-know-only-contracts',
      comment:
        'A simulator stands in for a partner: it sees the published contracts and the partner example, nothing of the hub.',
      severity: 'error',
      from: { path: '^services/simulators/', pathNot: TESTS },
      to: { path: '^(services|test|bench)/', pathNot: '^services/(contracts|simulators)/' },
    },
    {
      name: 'production-code-never-imports-tests',
      severity: 'error',
      from: { path: '^services/', pathNot: TESTS },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'production-code-uses-production-dependencies',
      comment:
        'The image installs only "dependencies"; the local hub and the simulators are not in it.',
      severity: 'error',
      from: { path: '^services/', pathNot: [TESTS, '^services/(hub|simulators)/'] },
      to: { dependencyTypes: ['npm-dev'] },
    },
    {
      name: 'no-circular',
      comment:
        'A cycle of imports that survive compilation (type-only imports vanish in the output).',
      severity: 'error',
      from: { path: '^services/' },
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
    },
  },
};
