/**
 * Durable history events in the shape the Durable Functions extension hands to the JavaScript worker
 * (PascalCase fields, `Timestamp` as ISO text). Events are built with the `durable-functions` package's own
 * event classes so their fields are exactly what its replay engine reads, then kept as plain JSON so a
 * storage-backed instance store can persist them as they are.
 */

/** One event of an orchestration's history, as JSON. */
export interface HistoryEventRecord {
    EventType: number;
    EventId: number;
    IsPlayed: boolean;
    Timestamp: string;
    [field: string]: unknown;
}

/** `HistoryEventType` of durable-functions (the Durable Task Framework's numbering). */
export const HistoryEventType = {
    ExecutionStarted: 0,
    ExecutionCompleted: 1,
    ExecutionFailed: 2,
    ExecutionTerminated: 3,
    TaskScheduled: 4,
    TaskCompleted: 5,
    TaskFailed: 6,
    SubOrchestrationInstanceCreated: 7,
    SubOrchestrationInstanceCompleted: 8,
    SubOrchestrationInstanceFailed: 9,
    TimerCreated: 10,
    TimerFired: 11,
    OrchestratorStarted: 12,
    OrchestratorCompleted: 13,
    EventSent: 14,
    EventRaised: 15,
    ContinueAsNew: 16,
} as const;

const eventTypeNames = new Map<number, string>(Object.entries(HistoryEventType).map(([k, v]) => [v, k]));

/** The name of an event type, for logs and test assertions. */
export function eventTypeName(type: number): string {
    return eventTypeNames.get(type) ?? `EventType${type}`;
}

interface EventOptions {
    eventId: number;
    timestamp: Date;
    isPlayed: boolean;
    [option: string]: unknown;
}
type EventClass = new (options: EventOptions) => object;

function eventClass(file: string): EventClass {
    // The package has no `exports` map, so its history classes resolve by path.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(`durable-functions/lib/src/history/${file}`) as Record<string, EventClass>;
    const cls = mod[file];
    if (!cls) throw new Error(`durable-functions/lib/src/history/${file} has no class ${file}`);
    return cls;
}

const classes = {
    OrchestratorStarted: eventClass('OrchestratorStartedEvent'),
    OrchestratorCompleted: eventClass('OrchestratorCompletedEvent'),
    ExecutionStarted: eventClass('ExecutionStartedEvent'),
    TaskScheduled: eventClass('TaskScheduledEvent'),
    TaskCompleted: eventClass('TaskCompletedEvent'),
    TaskFailed: eventClass('TaskFailedEvent'),
    TimerCreated: eventClass('TimerCreatedEvent'),
    TimerFired: eventClass('TimerFiredEvent'),
    EventRaised: eventClass('EventRaisedEvent'),
    SubOrchestrationInstanceCreated: eventClass('SubOrchestrationInstanceCreatedEvent'),
    SubOrchestrationInstanceCompleted: eventClass('SubOrchestrationInstanceCompletedEvent'),
    SubOrchestrationInstanceFailed: eventClass('SubOrchestrationInstanceFailedEvent'),
};

function toRecord(event: object): HistoryEventRecord {
    // JSON drops undefined fields and turns Dates into ISO text, as the extension's payload does.
    return JSON.parse(JSON.stringify(event)) as HistoryEventRecord;
}

function make(kind: keyof typeof classes, at: Date, eventId: number, fields: Record<string, unknown> = {}) {
    return toRecord(new classes[kind]({ eventId, timestamp: at, isPlayed: false, ...fields }));
}

/** Builders for each event the runtime writes. Completion events carry EventId -1, as the real host writes them. */
export const historyEvent = {
    orchestratorStarted: (at: Date) => make('OrchestratorStarted', at, -1),
    orchestratorCompleted: (at: Date) => make('OrchestratorCompleted', at, -1),
    executionStarted: (at: Date, name: string, input: string | undefined) =>
        make('ExecutionStarted', at, -1, { name, input }),
    taskScheduled: (at: Date, id: number, name: string, input: string | undefined) =>
        make('TaskScheduled', at, id, { name, input }),
    taskCompleted: (at: Date, taskScheduledId: number, result: string) =>
        make('TaskCompleted', at, -1, { taskScheduledId, result }),
    taskFailed: (at: Date, taskScheduledId: number, reason: string, details: string) =>
        make('TaskFailed', at, -1, { taskScheduledId, reason, details }),
    timerCreated: (at: Date, id: number, fireAt: Date) => make('TimerCreated', at, id, { fireAt }),
    timerFired: (at: Date, timerId: number, fireAt: Date) => make('TimerFired', at, -1, { timerId, fireAt }),
    eventRaised: (at: Date, name: string, input: string | undefined) => make('EventRaised', at, -1, { name, input }),
    subOrchestrationCreated: (at: Date, id: number, name: string, instanceId: string, input: string | undefined) =>
        make('SubOrchestrationInstanceCreated', at, id, { name, instanceId, input }),
    subOrchestrationCompleted: (at: Date, taskScheduledId: number, result: string) =>
        make('SubOrchestrationInstanceCompleted', at, -1, { taskScheduledId, result }),
    subOrchestrationFailed: (at: Date, taskScheduledId: number, reason: string, details: string) =>
        make('SubOrchestrationInstanceFailed', at, -1, { taskScheduledId, reason, details }),
    /** No class in the package (the engine never reads it); shaped like the Durable Task Framework's event. */
    executionCompleted: (at: Date, orchestrationStatus: string, result: string | undefined): HistoryEventRecord => ({
        EventType: HistoryEventType.ExecutionCompleted,
        EventId: -1,
        IsPlayed: false,
        Timestamp: at.toISOString(),
        OrchestrationStatus: orchestrationStatus,
        ...(result === undefined ? {} : { Result: result }),
    }),
    executionTerminated: (at: Date, reason: string): HistoryEventRecord => ({
        EventType: HistoryEventType.ExecutionTerminated,
        EventId: -1,
        IsPlayed: false,
        Timestamp: at.toISOString(),
        Input: JSON.stringify(reason),
    }),
};
