import type { StorageOpKind } from '../support/storageOps';
import {
    CAPACITY_LRS,
    EVENT_GRID_BASIC,
    FLEX_CONSUMPTION,
    HOURS_PER_MONTH,
    MONITOR,
    PRICES_AS_OF,
    PRICES_CURRENCY,
    PRICES_REGION,
    SERVICE_BUS_STANDARD,
    STORAGE_PRICE,
} from './prices';

/**
 * The monthly pipeline cost of one protected VM, from what one VM costs per copy cycle plus what the app costs
 * per hour whatever the fleet does (shared by the fleet), at the list prices of bench/cost/prices.ts.
 *
 * What it counts: Functions Flex Consumption executions and GB-seconds, storage transactions by REST operation,
 * Service Bus operations and the namespace's base charge, Event Grid operations, Application Insights ingestion,
 * the log alert rules. What it leaves out, reported apart: the replica storage itself (page blob data and
 * snapshots, GB-months). Not counted at all: egress (none: everything stays in the region), private endpoints
 * and Key Vault (optional in infra), the provider's own side.
 */

/** What one VM costs per copy cycle, every disk of it included. All counts are per VM per cycle. */
export interface PerVmCycleCounts {
    /**
     * Storage requests by kind (bench/support/storageOps.ts), as the storage counter's `byKind[k].requests`:
     * billing's transactions, so a table batch is one. Kinds left out are zero.
     */
    storageRequests: Partial<Record<StorageOpKind, number>>;
    /** Function executions: every trigger invocation, orchestrator episode and activity call. */
    functionExecutions: number;
    /**
     * Seconds an instance spent executing functions (Flex bills instance memory for the time at least one
     * execution runs on it; executions overlapping on one instance are billed once, so a sum of durations is an
     * upper bound).
     */
    functionBusySeconds: number;
    /** Service Bus operations (sends, receives, completions, each message of a batch counted). */
    serviceBusOperations: number;
    /** Event Grid operations (publishes and delivery attempts). */
    eventGridOperations: number;
    /** Bytes of telemetry ingested into Application Insights. */
    appInsightsBytes: number;
}

/** What the app costs per hour whatever its fleet (the Durable backend's polling, timers, the host's triggers). */
export type PerAppHourCounts = PerVmCycleCounts;

export interface CostModelInput {
    perVmCycle: PerVmCycleCounts;
    /** Seconds between a VM's copy cycles (the policy's copy frequency: 30, 300, 900). */
    copyFrequencySeconds: number;
    /** VMs protected by one app: the per-app costs are shared by them. */
    fleetSize: number;
    /** Per-app counts per hour; default none. */
    perAppHour?: Partial<PerAppHourCounts>;
    /** Flex instance memory; default infra's 2048 MB. */
    instanceMemoryMb?: number;
    /**
     * Subtract the monthly free grants (Flex, Event Grid, Log Analytics) from the fleet's use before pricing;
     * default false, since grants are per subscription or billing account and a fleet cannot count on them.
     * Service Bus's included operations always apply: they are part of its base charge.
     */
    applyFreeGrants?: boolean;
    /** Per VM: GB of replica page blob data and of snapshot pages that differ from it, for the separate line. */
    replica?: { pageBlobGb: number; snapshotGb: number };
}

export interface CostItem {
    /** `storage <kind>`, `per-app storage <kind>`, `functions executions`, ... */
    item: string;
    usdPerVmMonth: number;
    /** How it was computed, in words and numbers. */
    basis: string;
}

export interface CostEstimate {
    copyFrequencySeconds: number;
    fleetSize: number;
    cyclesPerVmMonth: number;
    /** Every non-zero item, largest first. */
    items: CostItem[];
    totalUsdPerVmMonth: number;
    /** The three largest items. */
    largest: CostItem[];
    /** The replica storage, not in the total. */
    replicaStorage: { pageBlobGbMonths: number; snapshotGbMonths: number; usdPerVmMonth: number };
    prices: { asOf: string; region: string; currency: string };
}

function requireNonNegative(name: string, value: number): void {
    if (!Number.isFinite(value) || value < 0) {
        throw new Error(`monthlyCostPerVm: ${name} must be a finite number ≥ 0, got ${value}`);
    }
}

function validate(input: CostModelInput): void {
    if (!Number.isFinite(input.copyFrequencySeconds) || input.copyFrequencySeconds <= 0) {
        throw new Error(`monthlyCostPerVm: copyFrequencySeconds must be > 0, got ${input.copyFrequencySeconds}`);
    }
    if (!Number.isInteger(input.fleetSize) || input.fleetSize < 1) {
        throw new Error(`monthlyCostPerVm: fleetSize must be a whole number ≥ 1, got ${input.fleetSize}`);
    }
    const check = (prefix: string, c: Partial<PerVmCycleCounts>): void => {
        for (const [k, v] of Object.entries(c.storageRequests ?? {})) {
            if (!(k in STORAGE_PRICE)) throw new Error(`monthlyCostPerVm: unknown storage kind "${k}" in ${prefix}`);
            requireNonNegative(`${prefix}.storageRequests["${k}"]`, v);
        }
        for (const key of [
            'functionExecutions',
            'functionBusySeconds',
            'serviceBusOperations',
            'eventGridOperations',
            'appInsightsBytes',
        ] as const) {
            const v = c[key];
            if (v !== undefined) requireNonNegative(`${prefix}.${key}`, v);
        }
    };
    check('perVmCycle', input.perVmCycle);
    check('perAppHour', input.perAppHour ?? {});
}

/** A month's Service Bus operations beyond the included ones, priced by tier. */
export function serviceBusOperationsUsd(operationsPerMonth: number): number {
    let usd = 0;
    let from: number = SERVICE_BUS_STANDARD.includedOperationsPerMonth;
    for (const tier of SERVICE_BUS_STANDARD.operationTiers) {
        if (operationsPerMonth <= from) break;
        usd += (Math.min(operationsPerMonth, tier.upToOperationsPerMonth) - from) * tier.perOperation;
        from = tier.upToOperationsPerMonth;
    }
    return usd;
}

const fmt = (n: number): string => (Number.isInteger(n) ? String(n) : n.toPrecision(4));

/**
 * Prices one protected VM for a month at the given copy frequency: per-VM-cycle counts × cycles in a month, plus
 * the per-app counts × 730 hours and the per-app fixed charges (Service Bus base, log alerts) divided by the
 * fleet. Free grants are not subtracted unless asked.
 */
export function monthlyCostPerVm(input: CostModelInput): CostEstimate {
    validate(input);
    const fleet = input.fleetSize;
    const cycles = (HOURS_PER_MONTH * 3600) / input.copyFrequencySeconds;
    const app = input.perAppHour ?? {};
    const vm = input.perVmCycle;
    const memoryGb = (input.instanceMemoryMb ?? FLEX_CONSUMPTION.instanceMemoryMb) / 1024;
    const grants = input.applyFreeGrants ?? false;
    const items: CostItem[] = [];
    const add = (item: string, usdPerVmMonth: number, basis: string): void => {
        if (usdPerVmMonth > 0) items.push({ item, usdPerVmMonth, basis });
    };

    // Storage: each kind on its own line, per VM and per app.
    for (const [kind, n] of Object.entries(vm.storageRequests) as [StorageOpKind, number][]) {
        const price = STORAGE_PRICE[kind];
        add(
            `storage ${kind}`,
            n * cycles * price.perOperation,
            `${fmt(n)}/cycle × ${fmt(cycles)} cycles × ${price.priceClass} $${price.perOperation.toExponential(3)}`,
        );
    }
    for (const [kind, n] of Object.entries(app.storageRequests ?? {}) as [StorageOpKind, number][]) {
        const price = STORAGE_PRICE[kind];
        add(
            `per-app storage ${kind}`,
            (n * HOURS_PER_MONTH * price.perOperation) / fleet,
            `${fmt(n)}/h × ${HOURS_PER_MONTH} h × ${price.priceClass} $${price.perOperation.toExponential(3)} / ${fleet} VMs`,
        );
    }

    // Functions: the fleet's month, less the grant if asked, shared by the fleet.
    const executions = fleet * vm.functionExecutions * cycles + (app.functionExecutions ?? 0) * HOURS_PER_MONTH;
    const billedExecutions = Math.max(0, executions - (grants ? FLEX_CONSUMPTION.freeExecutionsPerMonth : 0));
    add(
        'functions executions',
        (billedExecutions * FLEX_CONSUMPTION.onDemandPerExecution) / fleet,
        `${fmt(vm.functionExecutions)}/cycle per VM + ${fmt(app.functionExecutions ?? 0)}/h per app → ` +
            `${fmt(billedExecutions)} billed/month × $${FLEX_CONSUMPTION.onDemandPerExecution.toExponential(3)} / ${fleet} VMs`,
    );
    const gbSeconds =
        (fleet * vm.functionBusySeconds * cycles + (app.functionBusySeconds ?? 0) * HOURS_PER_MONTH) * memoryGb;
    const billedGbSeconds = Math.max(0, gbSeconds - (grants ? FLEX_CONSUMPTION.freeGbSecondsPerMonth : 0));
    add(
        'functions GB-seconds',
        (billedGbSeconds * FLEX_CONSUMPTION.onDemandPerGbSecond) / fleet,
        `${fmt(vm.functionBusySeconds)} s/cycle per VM + ${fmt(app.functionBusySeconds ?? 0)} s/h per app × ` +
            `${memoryGb} GB → ${fmt(billedGbSeconds)} GB-s/month × $${FLEX_CONSUMPTION.onDemandPerGbSecond} / ${fleet} VMs`,
    );

    // Service Bus: the base charge is the namespace's; its included operations cover the fleet's first 13 million.
    add(
        'service bus base charge (per app)',
        (SERVICE_BUS_STANDARD.basePerHour * HOURS_PER_MONTH) / fleet,
        `$${SERVICE_BUS_STANDARD.basePerHour}/h × ${HOURS_PER_MONTH} h / ${fleet} VMs`,
    );
    const busOps = fleet * vm.serviceBusOperations * cycles + (app.serviceBusOperations ?? 0) * HOURS_PER_MONTH;
    add(
        'service bus operations',
        serviceBusOperationsUsd(busOps) / fleet,
        `${fmt(busOps)} ops/month, ${fmt(SERVICE_BUS_STANDARD.includedOperationsPerMonth)} included, ` +
            `the rest at the tiers' rates / ${fleet} VMs`,
    );

    const gridOps = fleet * vm.eventGridOperations * cycles + (app.eventGridOperations ?? 0) * HOURS_PER_MONTH;
    const billedGridOps = Math.max(0, gridOps - (grants ? EVENT_GRID_BASIC.freeOperationsPerMonth : 0));
    add(
        'event grid operations',
        (billedGridOps * EVENT_GRID_BASIC.perOperation) / fleet,
        `${fmt(vm.eventGridOperations)}/cycle per VM → ${fmt(billedGridOps)} billed/month × ` +
            `$${EVENT_GRID_BASIC.perOperation.toExponential(3)} / ${fleet} VMs`,
    );

    const gb = (fleet * vm.appInsightsBytes * cycles + (app.appInsightsBytes ?? 0) * HOURS_PER_MONTH) / 1e9;
    const billedGb = Math.max(0, gb - (grants ? MONITOR.freeGbPerMonth : 0));
    add(
        'application insights ingestion',
        (billedGb * MONITOR.perGbIngested) / fleet,
        `${fmt(vm.appInsightsBytes)} B/cycle per VM + ${fmt(app.appInsightsBytes ?? 0)} B/h per app → ` +
            `${fmt(billedGb)} GB/month × $${MONITOR.perGbIngested} / ${fleet} VMs`,
    );
    const alerts =
        MONITOR.logAlertsAt5Minutes * MONITOR.logAlertPerMonthAt5Minutes +
        MONITOR.logAlertsAt15Minutes * MONITOR.logAlertPerMonthAt15Minutes;
    add(
        'log alert rules (per app)',
        alerts / fleet,
        `${MONITOR.logAlertsAt5Minutes} × $${MONITOR.logAlertPerMonthAt5Minutes} + ` +
            `${MONITOR.logAlertsAt15Minutes} × $${MONITOR.logAlertPerMonthAt15Minutes} / ${fleet} VMs`,
    );

    items.sort((a, b) => b.usdPerVmMonth - a.usdPerVmMonth);
    const total = items.reduce((s, i) => s + i.usdPerVmMonth, 0);
    const replica = input.replica ?? { pageBlobGb: 0, snapshotGb: 0 };
    requireNonNegative('replica.pageBlobGb', replica.pageBlobGb);
    requireNonNegative('replica.snapshotGb', replica.snapshotGb);
    return {
        copyFrequencySeconds: input.copyFrequencySeconds,
        fleetSize: fleet,
        cyclesPerVmMonth: cycles,
        items,
        totalUsdPerVmMonth: total,
        largest: items.slice(0, 3),
        replicaStorage: {
            pageBlobGbMonths: replica.pageBlobGb,
            snapshotGbMonths: replica.snapshotGb,
            usdPerVmMonth:
                replica.pageBlobGb * CAPACITY_LRS.pageBlobPerGbMonth +
                replica.snapshotGb * CAPACITY_LRS.snapshotPerGbMonth,
        },
        prices: { asOf: PRICES_AS_OF, region: PRICES_REGION, currency: PRICES_CURRENCY },
    };
}
