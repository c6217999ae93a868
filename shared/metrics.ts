import { InvocationContext } from '@azure/functions';

/** Where replication metrics go (the alert rules read them). */
export interface MetricSink {
    emit(context: InvocationContext, name: string, value: number, dimensions: Record<string, string>): void;
}

/** Metrics as structured log lines: a log-based alert (or a log-to-metric rule) reads `name` and `value`. */
export const logMetricSink: MetricSink = {
    emit(context, name, value, dimensions) {
        context.log(JSON.stringify({ metric: name, value, ...dimensions }));
    },
};
