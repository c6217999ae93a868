/** @type {import('jest').Config} */
module.exports = {
    testEnvironment: 'node',
    roots: ['<rootDir>/test'],
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
