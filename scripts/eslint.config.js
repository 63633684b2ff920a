// The lint rules, deliberately few: each catches a kind of bug the type checker lets through, or
// keeps a house rule (no dead code, logs through pino). Run by `npm run lint` (and so by CI).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'test/e2e/node_modules/'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: new URL('..', import.meta.url).pathname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // A promise nobody awaits or catches turns a failure into an unhandled rejection (a crash).
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] }] },
      ],
      // An async callback handed to an event emitter or timer has its rejection dropped the same way.
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: true, attributes: false } }],
      // A switch over a union (message types, close reasons, modes) must say what it does with each.
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/only-throw-error': 'error',
      // No dead code.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
      'no-unreachable': 'error',
      eqeqeq: ['error', 'smart'],
      // `let` stays for a variable a callback reads before its one assignment (wiring in gateway, server).
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      // The gateway logs through pino, so its lines carry levels and fields.
      'no-console': 'error',
    },
  },
);
