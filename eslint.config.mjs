// @ts-check
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeBuiltins = [
    'fs',
    'fs/promises',
    'net',
    'http',
    'https',
    'dgram',
    'dns',
    'child_process',
    'worker_threads',
    'os',
    'crypto',
    'timers',
    'timers/promises',
    'readline',
    'stream',
];

// The local platform (packages/functions-local) is a package of its own: the app reaches it only through its
// entry (src/index.ts), and it reaches nothing of the app.
const platformInternals = {
    regex: 'functions-local/(?!src$)',
    message: 'Import the local platform through its entry (packages/functions-local/src), not its internals.',
};
const platformOutsideSrc = {
    regex: '^(\\.\\./){3,}',
    message: 'The local platform imports nothing from the app: keep it self-contained (packages/functions-local).',
};
const platformOutsideTop = {
    regex: '^(\\.\\./){2,}',
    message: platformOutsideSrc.message,
};

export default tseslint.config(
    {
        ignores: [
            'dist/**',
            'packages/*/dist/**',
            'node_modules/**',
            'coverage/**',
            '.deploy/**',
            '.tools/**',
            'jest.config.js',
            'packages/*/jest.config.js',
            'eslint.config.mjs',
        ],
    },
    eslint.configs.recommended,
    ...tseslint.configs.recommendedTypeChecked,
    {
        languageOptions: {
            parserOptions: { project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname },
        },
        rules: {
            '@typescript-eslint/no-floating-promises': 'error',
            '@typescript-eslint/no-misused-promises': 'error',
            '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
            '@typescript-eslint/require-await': 'off',
        },
    },
    {
        // The operator console runs in the browser: its own TypeScript project (DOM, Preact's JSX).
        files: ['console/**/*.ts', 'console/**/*.tsx'],
        languageOptions: {
            parserOptions: { project: './console/tsconfig.json', tsconfigRootDir: import.meta.dirname },
        },
    },
    {
        files: ['test/**/*.ts', 'bench/**/*.ts', 'tools/**/*.ts', 'packages/functions-local/**/*.ts'],
        rules: {
            '@typescript-eslint/no-unsafe-assignment': 'off',
            '@typescript-eslint/no-unsafe-member-access': 'off',
            '@typescript-eslint/no-unsafe-argument': 'off',
            '@typescript-eslint/no-unsafe-call': 'off',
            '@typescript-eslint/no-unsafe-return': 'off',
            '@typescript-eslint/no-non-null-assertion': 'off',
        },
    },
    {
        // Orchestrators replay: they must be deterministic. Time, randomness and I/O come only through context.df
        // (orchestrators) or through the ports handed to activities.
        files: ['orchestrations/**/*.ts'],
        rules: {
            'no-restricted-imports': [
                'error',
                {
                    paths: nodeBuiltins.flatMap((name) => [
                        { name, message: 'Orchestrations do no I/O: use an activity and its ports.' },
                        { name: `node:${name}`, message: 'Orchestrations do no I/O: use an activity and its ports.' },
                    ]),
                    patterns: [
                        {
                            group: [
                                '@azure/storage-*',
                                '@azure/core-rest-pipeline',
                                '@azure/data-tables',
                                '@azure/service-bus',
                                '@azure/identity',
                                '@azure/arm-*',
                            ],
                            message:
                                'Orchestrations do no I/O: SDK calls belong in shared/ adapters reached through ports.',
                        },
                        {
                            regex: 'functions-local',
                            message: 'Orchestrations run on any Durable engine: they never import the local platform.',
                        },
                    ],
                },
            ],
            'no-restricted-syntax': [
                'error',
                {
                    selector: "CallExpression[callee.object.name='Date'][callee.property.name='now']",
                    message: 'Use context.df.currentUtcDateTime (or the clock port in activities).',
                },
                {
                    selector: "NewExpression[callee.name='Date'][arguments.length=0]",
                    message: 'Use context.df.currentUtcDateTime (or the clock port in activities).',
                },
                {
                    selector: "CallExpression[callee.object.name='Math'][callee.property.name='random']",
                    message: 'Use context.df.newGuid for unique values.',
                },
            ],
        },
    },
    {
        // The app's tools, tests and benchmarks reach the local platform through its entry only.
        files: ['tools/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
        rules: { 'no-restricted-imports': ['error', { patterns: [platformInternals] }] },
    },
    {
        // What deploys to Azure never depends on the local platform.
        files: ['functions/**/*.ts', 'shared/**/*.ts', 'index.ts'],
        rules: {
            'no-restricted-imports': [
                'error',
                {
                    patterns: [
                        { regex: 'functions-local', message: 'Deployed code never imports the local platform.' },
                    ],
                },
            ],
        },
    },
    {
        files: ['packages/functions-local/src/*/**/*.ts'],
        rules: { 'no-restricted-imports': ['error', { patterns: [platformOutsideSrc] }] },
    },
    {
        files: ['packages/functions-local/src/*.ts', 'packages/functions-local/test/*.ts'],
        rules: { 'no-restricted-imports': ['error', { patterns: [platformOutsideTop] }] },
    },
    {
        // The one CommonJS file: the crash suite's child processes load the TypeScript sources through it.
        files: ['test/crash/child/register.js'],
        extends: [tseslint.configs.disableTypeChecked],
        languageOptions: {
            sourceType: 'commonjs',
            parserOptions: { project: false, program: null },
            globals: { require: 'readonly', process: 'readonly', module: 'writable' },
        },
        rules: { '@typescript-eslint/no-require-imports': 'off' },
    },
);
