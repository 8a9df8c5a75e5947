export { bucketOf, DAY, MINUTE, QUARTER, rollUp, total } from './buckets.js';
export { AnalyticsQueries } from './queries.js';
export { AnalyticsRecorder, type RecorderOptions } from './recorder.js';
export { type BatchRate, ThroughputTracker } from './throughput.js';
