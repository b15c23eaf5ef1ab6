// The itool library: everything a user drives from TypeScript.
export * as engine from './engine/index.js';
export * as toolcall from './toolcall/index.js';
export * as data from './data/index.js';
export * as text from './text/index.js';
export * as train from './train/index.js';
export * as search from './search/index.js';
