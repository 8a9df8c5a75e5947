import { ANALYTICS_COUNTERS } from '../meta-store.js';

/** camelCase counter → snake_case column (constant identifiers only). */
const column = (c: string): string => c.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`);

/** The columns of `analytics_project_minutes` holding ANALYTICS_COUNTERS, in the same order. */
export const ANALYTICS_COLUMNS: readonly string[] = ANALYTICS_COUNTERS.map(column);

/** The project of minutes summed over every project. */
export const ALL_PROJECTS = '*';
