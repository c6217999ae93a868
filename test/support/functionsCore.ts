import { functionRegistry } from '../../packages/functions-local/src';

// Every test file gets a fresh registry standing in for the worker's `@azure/functions-core`, so importing
// an app module registers its functions where tests can call them.
const registry = functionRegistry();
jest.doMock('@azure/functions-core', () => registry.coreModule(), { virtual: true });
