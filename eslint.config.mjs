import js from '@eslint/js';
import simpleImportSort from 'eslint-plugin-simple-import-sort';
import tseslint from 'typescript-eslint';

// Folders may only import "down" the layering of DESIGN.md.
const layers = {
  domain: [],
  jsonl: ['domain'],
  store: ['domain'],
  upstream: ['domain'],
  mock: ['domain'],
  analytics: ['store', 'domain'],
  // The webhook outbox's sender: reads and records deliveries through the store, signs and POSTs them.
  webhooks: ['store', 'domain'],
  engine: ['upstream', 'store', 'jsonl', 'analytics', 'domain'],
  api: ['engine', 'webhooks', 'store', 'analytics', 'jsonl', 'upstream', 'domain'],
  runtime: ['api', 'engine', 'webhooks', 'store', 'analytics', 'jsonl', 'upstream', 'domain'],
  cli: ['runtime', 'api', 'engine', 'webhooks', 'store', 'analytics', 'jsonl', 'upstream', 'mock', 'domain'],
};
const all = ['domain', 'jsonl', 'store', 'upstream', 'mock', 'analytics', 'webhooks', 'engine', 'api', 'runtime', 'cli'];
// The store implementations are chosen in one place (src/runtime/open-stores.ts): everything
// else sees the MetaStore and BlobStore interfaces only.
const concreteStores = {
  group: ['**/store/sqlite/*', '**/store/postgres/*', '**/store/local-blob-store*', '**/store/s3-*'],
  message: 'only src/runtime/ picks a store implementation; use the MetaStore / BlobStore interfaces',
};
const choosesStores = new Set(['store', 'runtime']);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'web/dist/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'simple-import-sort': simpleImportSort },
    rules: {
      'simple-import-sort/imports': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // Fastify handlers are async by contract even when they await nothing.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
    },
  },
  ...Object.entries(layers).map(([layer, allowed]) => ({
    files: [`src/${layer}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...all
              .filter((l) => l !== layer && !allowed.includes(l))
              .map((l) => ({ group: [`**/${l}/*`, `../${l}`, `../../${l}`], message: `${layer}/ may not import ${l}/ (see DESIGN.md)` })),
            ...(choosesStores.has(layer) ? [] : [concreteStores]),
          ],
        },
      ],
    },
  })),
  {
    // Tests read JSON results field by field.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  { files: ['**/*.mjs', 'eslint.config.mjs'], ...tseslint.configs.disableTypeChecked },
);
