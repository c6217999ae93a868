import Ajv2020, { ErrorObject, ValidateFunction } from 'ajv/dist/2020';
import { HvrError } from '../errors';
import { CONTRACT_VERSION, ProviderCommand, ProviderEvent } from './messages';
import { commandSchemas, eventSchemas } from './schemas';

const ajv = new Ajv2020({ allErrors: false, strict: true });

function compileAll(schemas: Record<string, Record<string, unknown>>): Map<string, ValidateFunction> {
    const compiled = new Map<string, ValidateFunction>();
    for (const [type, schema] of Object.entries(schemas)) compiled.set(type, ajv.compile(schema));
    return compiled;
}

const commandValidators = compileAll(commandSchemas);
const eventValidators = compileAll(eventSchemas);

function describe(error: ErrorObject | undefined): string {
    if (!error) return 'does not match its schema';
    const where = error.instancePath === '' ? 'the message' : error.instancePath;
    const extra =
        error.keyword === 'additionalProperties'
            ? ` (${String((error.params as { additionalProperty?: string }).additionalProperty)})`
            : '';
    return `${where} ${error.message ?? 'is invalid'}${extra}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function validateAgainst<T>(body: unknown, validators: Map<string, ValidateFunction>, what: 'command' | 'event'): T {
    if (!isObject(body)) throw new HvrError('MESSAGE_INVALID', `A provider ${what} must be a JSON object.`);
    const { type, version } = body;
    if (typeof type !== 'string') throw new HvrError('MESSAGE_INVALID', `The ${what} has no string "type".`);
    const validate = validators.get(type);
    if (!validate) {
        throw new HvrError(
            'MESSAGE_UNKNOWN_TYPE',
            `Unknown ${what} type "${type.slice(0, 64)}"; known: ${[...validators.keys()].join(', ')}.`,
        );
    }
    if (version !== CONTRACT_VERSION) {
        throw new HvrError(
            'MESSAGE_VERSION',
            `${type} version ${JSON.stringify(version)} is not supported; this service speaks version ${CONTRACT_VERSION}.`,
        );
    }
    if (!validate(body)) {
        throw new HvrError('MESSAGE_INVALID', `${type}: ${describe(validate.errors?.[0])}.`);
    }
    return body as T;
}

/**
 * Checks a parsed command body against its published schema. Throws MESSAGE_UNKNOWN_TYPE, MESSAGE_VERSION or
 * MESSAGE_INVALID (naming the first offending field).
 */
export function validateCommand(body: unknown): ProviderCommand {
    return validateAgainst<ProviderCommand>(body, commandValidators, 'command');
}

/** Checks an event before it is sent: the pipeline never sends what it would reject from a provider. */
export function validateEvent(body: unknown): ProviderEvent {
    return validateAgainst<ProviderEvent>(body, eventValidators, 'event');
}
