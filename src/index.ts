// The itool library: everything a user drives from TypeScript.
export * as engine from './engine/index.js';
