/** @type {import('jest').Config} */
module.exports = {
    testEnvironment: 'node',
    // The workspace packages' own tests run here too, so `npm test` covers the whole repository.
    roots: ['<rootDir>/test', '<rootDir>/packages/functions-local/test', '<rootDir>/packages/provider-kit/test'],
    testMatch: ['**/*.test.ts'],
    transform: {
        '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }],
    },
    setupFiles: ['<rootDir>/test/support/functionsCore.ts'],
    globalSetup: '<rootDir>/test/support/globalSetup.ts',
    globalTeardown: '<rootDir>/test/support/globalTeardown.ts',
    // Integration tests move real bytes through Azurite on a 2-core machine; a hung call still fails the test.
    testTimeout: 180000,
    maxWorkers: 2,
};
