export type { MockStats } from './mock-stats.js';
export { defaultMockOptions, type MockOptions, parseMockOptions, resolveMockOptions, type SchedulingPolicy } from './mock-options.js';
export { type MockServer, startMockServer } from './mock-server.js';
