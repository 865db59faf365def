// ESLint flat config: ESLint's and typescript-eslint's recommended rules (syntax only, no type
// information, so a run stays quick), a few rules of our own, and eslint-config-prettier last so
// that layout is Prettier's alone. `npm run lint` runs it with `--max-warnings 0`.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

// Node's globals, for the plain JavaScript files (TypeScript files get theirs from the compiler).
const nodeGlobals = {
  Buffer: 'readonly',
  URL: 'readonly',
  console: 'readonly',
  process: 'readonly',
  setTimeout: 'readonly',
  clearTimeout: 'readonly',
  setInterval: 'readonly',
  clearInterval: 'readonly',
};

export default tseslint.config(
  {
    // Build output, installs, the Helm chart and anything else that is not our source.
    ignores: ['dist/', 'coverage/', 'charts/', 'k8s/', 'crds/', '.dev/', '**/*.d.ts'],
  },
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    rules: {
      eqeqeq: ['error', 'smart'],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
  {
    files: ['**/*.js'],
    languageOptions: { sourceType: 'module', globals: nodeGlobals },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { ...nodeGlobals, require: 'readonly', module: 'writable' },
    },
    // CommonJS files (Jest's test environment and reporter) load their dependencies with require().
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  prettier,
  {
    // After eslint-config-prettier, which turns `curly` off: a statement that does not fit on its
    // if's line gets braces. Prettier never removes braces, so `npm run format` (Prettier, then
    // `eslint --fix` for the ifs it broke, then Prettier again) settles every file.
    rules: { curly: ['error', 'multi-line'] },
  },
);
