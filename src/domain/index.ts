export * from './errors.js';
export * from './ids.js';
export * from './serialize.js';
export * from './types.js';
