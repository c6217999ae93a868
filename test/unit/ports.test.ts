import { ServiceBusEventPublisher } from '../../shared/bus/eventPublisher';
import { HvrError } from '../../shared/errors';
import { ports, resetPorts, setPorts } from '../../shared/ports';
import { stateScope } from '../../shared/state/protectedItems';
import { StorageConnection } from '../../shared/storage/connections';

const EMULATOR = 'Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=x;SharedAccessKey=y;UseDevelopmentEmulator=true';
const BUS_SETTINGS = [
    'PROVIDER_BUS',
    'PROVIDER_BUS__fullyQualifiedNamespace',
    'PROVIDER_BUS__credential',
    'PROVIDER_BUS__clientId',
];

let saved: Record<string, string | undefined>;

beforeEach(() => {
    saved = Object.fromEntries(BUS_SETTINGS.map((name) => [name, process.env[name]]));
    for (const name of BUS_SETTINGS) delete process.env[name];
    resetPorts();
});

afterEach(() => {
    for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
    }
    resetPorts();
});

function configMissing(): HvrError {
    try {
        ports().providerEvents();
    } catch (err) {
        return err as HvrError;
    }
    throw new Error('providerEvents() resolved without PROVIDER_BUS');
}

describe('the default provider event publisher', () => {
    it('publishes through the Service Bus adapter when PROVIDER_BUS is a connection string, one per process', () => {
        process.env.PROVIDER_BUS = EMULATOR;
        const publisher = ports().providerEvents();
        expect(publisher).toBeInstanceOf(ServiceBusEventPublisher);
        expect(ports().providerEvents()).toBe(publisher);
    });

    it('publishes through the Service Bus adapter with a managed identity and the namespace setting', () => {
        process.env.PROVIDER_BUS__fullyQualifiedNamespace = 'hvr-bus.servicebus.windows.net';
        process.env.PROVIDER_BUS__credential = 'managedidentity';
        process.env.PROVIDER_BUS__clientId = '00000000-0000-0000-0000-000000000001';
        expect(ports().providerEvents()).toBeInstanceOf(ServiceBusEventPublisher);
    });

    it('fails with CONFIG_MISSING naming the setting when neither form is set', () => {
        const err = configMissing();
        expect(err).toBeInstanceOf(HvrError);
        expect(err.code).toBe('CONFIG_MISSING');
        expect(err.message).toMatch(/PROVIDER_BUS\b.*PROVIDER_BUS__fullyQualifiedNamespace/);
        expect(err.details).toEqual({ setting: 'PROVIDER_BUS' });
    });

    it('treats an empty PROVIDER_BUS as not configured', () => {
        process.env.PROVIDER_BUS = '';
        expect(configMissing().code).toBe('CONFIG_MISSING');
    });

    it('does not remember a failed first use: setting PROVIDER_BUS later is picked up', () => {
        expect(configMissing().code).toBe('CONFIG_MISSING');
        process.env.PROVIDER_BUS = EMULATOR;
        expect(ports().providerEvents()).toBeInstanceOf(ServiceBusEventPublisher);
    });

    it('gives way to a publisher set with setPorts (tests, the local host)', () => {
        const local = { publish: () => Promise.resolve() };
        const restore = setPorts({ providerEvents: () => local });
        expect(ports().providerEvents()).toBe(local);
        restore();
        expect(configMissing().code).toBe('CONFIG_MISSING');
    });
});

describe('the state port', () => {
    const conn = {} as StorageConnection;

    afterEach(() => {
        delete process.env.STATE_TABLE_PREFIX;
    });

    it('is the storage port with the STATE_TABLE_PREFIX setting, and what stateScope() returns', () => {
        setPorts({ storage: () => conn });
        process.env.STATE_TABLE_PREFIX = 't42';
        expect(ports().state()).toEqual({ conn, tablePrefix: 't42' });
        expect(stateScope()).toEqual({ conn, tablePrefix: 't42' });
        delete process.env.STATE_TABLE_PREFIX;
        expect(stateScope()).toEqual({ conn, tablePrefix: '' });
    });

    it('refuses a prefix that is not letters and digits with CONFIG_MISSING', () => {
        setPorts({ storage: () => conn });
        process.env.STATE_TABLE_PREFIX = 'a-b';
        expect(() => stateScope()).toThrow(expect.objectContaining({ code: 'CONFIG_MISSING' }));
    });

    it('gives way to a scope set with setPorts, which the replica adapter then uses', () => {
        const scope = { conn, tablePrefix: 'x1' };
        setPorts({ state: () => scope });
        expect(stateScope()).toBe(scope);
        expect(Object.keys(ports().replicas()).sort()).toEqual([
            'createReplicaDisk',
            'identifyTarget',
            'removeReplica',
        ]);
    });
});
