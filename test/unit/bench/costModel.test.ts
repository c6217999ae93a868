import { monthlyCostPerVm, serviceBusOperationsUsd, type CostModelInput } from '../../../bench/cost/model';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FLEX_CONSUMPTION, MONITOR, STORAGE_PRICE } from '../../../bench/cost/prices';
import { STORAGE_OP_KINDS } from '../../../bench/support/storageOps';

// Every figure below is computed by hand from the prices file's constants: 730 h × 3600 s / 300 s = 8,760 cycles.
const input: CostModelInput = {
    copyFrequencySeconds: 300,
    fleetSize: 10,
    perVmCycle: {
        storageRequests: { 'blob.putPage': 10, 'queue.getMessages': 2, 'table.batch': 1 },
        functionExecutions: 5,
        functionBusySeconds: 2,
        serviceBusOperations: 4,
        eventGridOperations: 2,
        appInsightsBytes: 10_000,
    },
    perAppHour: { storageRequests: { 'queue.getMessages': 600 } },
};

function item(name: string, estimate = monthlyCostPerVm(input)): number {
    const found = estimate.items.find((i) => i.item === name);
    if (!found) throw new Error(`no item ${name} in ${estimate.items.map((i) => i.item).join(', ')}`);
    return found.usdPerVmMonth;
}

describe('monthlyCostPerVm', () => {
    it('prices each storage kind per cycle at its class, and per-app traffic shared by the fleet', () => {
        const e = monthlyCostPerVm(input);
        expect(e.cyclesPerVmMonth).toBe(8760);
        // 10 × 8,760 × $0.055 / 10,000
        expect(item('storage blob.putPage')).toBeCloseTo(0.4818, 10);
        // 2 × 8,760 × $0.004 / 10,000
        expect(item('storage queue.getMessages')).toBeCloseTo(0.007008, 10);
        // a batch is one transaction: 8,760 × $0.00036 / 10,000
        expect(item('storage table.batch')).toBeCloseTo(0.00031536, 12);
        // 600/h × 730 h × $0.004 / 10,000, over 10 VMs
        expect(item('per-app storage queue.getMessages')).toBeCloseTo(0.01752, 10);
    });

    it('prices Functions, Service Bus, Event Grid, ingestion and alerts for the fleet, per VM', () => {
        // 10 VMs × 5 × 8,760 = 438,000 executions × $0.40/M, over 10
        expect(item('functions executions')).toBeCloseTo(0.01752, 10);
        // 10 × 2 s × 8,760 × 2 GB = 350,400 GB-s × $0.000026, over 10
        expect(item('functions GB-seconds')).toBeCloseTo(0.91104, 10);
        // $0.0135 × 730, over 10
        expect(item('service bus base charge (per app)')).toBeCloseTo(0.9855, 10);
        // 10 × 2 × 8,760 = 175,200 ops × $0.60/M, over 10
        expect(item('event grid operations')).toBeCloseTo(0.010512, 10);
        // 10 × 10,000 B × 8,760 = 0.876 GB × $2.30, over 10
        expect(item('application insights ingestion')).toBeCloseTo(0.20148, 10);
        // 4 × $1.50 + 1 × $0.50, over 10
        expect(item('log alert rules (per app)')).toBeCloseTo(0.65, 10);
    });

    it('leaves the included Service Bus operations out, adds the items up and names the three largest', () => {
        const e = monthlyCostPerVm(input);
        // 350,400 operations a month are inside the 13 million the base charge includes.
        expect(e.items.some((i) => i.item === 'service bus operations')).toBe(false);
        expect(e.totalUsdPerVmMonth).toBeCloseTo(3.28269536, 8);
        expect(e.largest.map((i) => i.item)).toEqual([
            'service bus base charge (per app)',
            'functions GB-seconds',
            'log alert rules (per app)',
        ]);
        expect(e.prices).toEqual({
            asOf: expect.stringMatching(/^\d{4}-\d\d-\d\d$/),
            region: 'East US',
            currency: 'USD',
        });
    });

    it('prices Service Bus operations above the included ones by tier', () => {
        expect(serviceBusOperationsUsd(13_000_000)).toBe(0);
        // 87 M × $0.80/M + 250.4 M × $0.50/M
        expect(serviceBusOperationsUsd(350_400_000)).toBeCloseTo(69.6 + 125.2, 8);
        // 1,000 VMs × 4 ops × 87,600 cycles at 30 s = 350.4 M ops, per VM
        const e = monthlyCostPerVm({ ...input, fleetSize: 1000, copyFrequencySeconds: 30 });
        expect(item('service bus operations', e)).toBeCloseTo(0.1948, 8);
    });

    it('subtracts the free grants only when asked', () => {
        const e = monthlyCostPerVm({ ...input, applyFreeGrants: true });
        // 438,000 − 250,000 executions × $0.40/M, over 10
        expect(item('functions executions', e)).toBeCloseTo(0.00752, 10);
        // 350,400 − 100,000 GB-s × $0.000026, over 10
        expect(item('functions GB-seconds', e)).toBeCloseTo(0.65104, 10);
        // 175,200 − 100,000 ops × $0.60/M, over 10
        expect(item('event grid operations', e)).toBeCloseTo(0.004512, 10);
        // 0.876 GB is inside the 5 GB allowance
        expect(e.items.some((i) => i.item === 'application insights ingestion')).toBe(false);
    });

    it('reports the replica storage apart from the total', () => {
        const without = monthlyCostPerVm(input);
        const e = monthlyCostPerVm({ ...input, replica: { pageBlobGb: 100, snapshotGb: 10 } });
        expect(e.replicaStorage).toEqual({
            pageBlobGbMonths: 100,
            snapshotGbMonths: 10,
            usdPerVmMonth: expect.any(Number),
        });
        expect(e.replicaStorage.usdPerVmMonth).toBeCloseTo(110 * 0.045, 10);
        expect(e.totalUsdPerVmMonth).toBe(without.totalUsdPerVmMonth);
    });

    it('scales with the copy frequency: a tenth of the cycles cost a tenth per VM', () => {
        const at300 = item('storage blob.putPage');
        const at3000 = item('storage blob.putPage', monthlyCostPerVm({ ...input, copyFrequencySeconds: 3000 }));
        expect(at3000).toBeCloseTo(at300 / 10, 12);
    });

    it('refuses bad input, naming the value', () => {
        expect(() => monthlyCostPerVm({ ...input, copyFrequencySeconds: 0 })).toThrow(
            /copyFrequencySeconds must be > 0, got 0/,
        );
        expect(() => monthlyCostPerVm({ ...input, fleetSize: 2.5 })).toThrow(
            /fleetSize must be a whole number ≥ 1, got 2.5/,
        );
        expect(() =>
            monthlyCostPerVm({ ...input, perVmCycle: { ...input.perVmCycle, functionExecutions: -1 } }),
        ).toThrow(/perVmCycle.functionExecutions must be a finite number ≥ 0, got -1/);
        expect(() =>
            monthlyCostPerVm({
                ...input,
                perVmCycle: { ...input.perVmCycle, storageRequests: { 'blob.putPages': 1 } as never },
            }),
        ).toThrow(/unknown storage kind "blob.putPages"/);
    });
});

describe('storage prices', () => {
    it('price every kind the counter tells apart', () => {
        expect(Object.keys(STORAGE_PRICE).sort()).toEqual([...STORAGE_OP_KINDS].sort());
    });
});

describe('the prices file and infra agree', () => {
    const read = (p: string): string => readFileSync(join(__dirname, '../../../infra', p), 'utf8');

    it('counts the log alert rules infra deploys, by evaluation frequency', () => {
        const alerts = read('modules/alerts.bicep');
        expect(alerts.match(/evaluationFrequency: 'PT5M'/g)?.length ?? 0).toBe(MONITOR.logAlertsAt5Minutes);
        expect(alerts.match(/evaluationFrequency: 'PT15M'/g)?.length ?? 0).toBe(MONITOR.logAlertsAt15Minutes);
        expect(alerts.match(/evaluationFrequency:/g)?.length).toBe(
            MONITOR.logAlertsAt5Minutes + MONITOR.logAlertsAt15Minutes,
        );
    });

    it('prices the SKUs infra defaults to', () => {
        const main = read('main.bicep');
        expect(main).toMatch(/param replicaStorageSku string = 'Standard_LRS'/);
        expect(main).toMatch(/param serviceBusSku string = 'Standard'/);
        expect(main).toMatch(new RegExp(`param instanceMemoryMB int = ${FLEX_CONSUMPTION.instanceMemoryMb}\\b`));
        expect(main).toMatch(/param alwaysReady array = \[\]/);
        expect(read('modules/monitoring.bicep')).toMatch(/name: 'PerGB2018'/);
    });
});
