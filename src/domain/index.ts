export * from './batch-lifecycle.js';
export * from './errors.js';
export * from './ids.js';
export * from './serialize.js';
export * from './tenancy.js';
export * from './types.js';
