// Jest runs the TypeScript sources as ES modules; type checking is done once by `tsc` in `npm test`.
/** @type {import('jest').Config} */
export default {
  testEnvironment: '<rootDir>/test/support/leak-environment.cjs',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, diagnostics: false }],
  },
  testMatch: ['<rootDir>/services/**/*.test.ts', '<rootDir>/test/**/*.test.ts'],
  reporters: ['default', '<rootDir>/test/support/summary-reporter.cjs'],
  testTimeout: 30000,
  detectOpenHandles: false,
  // A handle a test file leaves open must not hold CI until its time limit: the run ends when its
  // results are in, and the summary reporter names what was still open.
  forceExit: true,
};
