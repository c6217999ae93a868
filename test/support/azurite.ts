import { connectionFromString, StorageConnection } from '../../shared/storage/connections';
import { randomBytes } from 'node:crypto';

/** The Azurite started by the jest global setup. */
export function testStorage(): StorageConnection {
    const cs = process.env.AZURITE_CONNECTION_STRING;
    if (!cs)
        throw new Error('AZURITE_CONNECTION_STRING is not set: run through jest (its global setup starts Azurite)');
    return connectionFromString(cs);
}

/** A container or table name unique to one test, so tests never see each other's data. */
export function uniqueName(prefix: string): string {
    return `${prefix}${randomBytes(5).toString('hex')}`.toLowerCase();
}
