export * from './engine.js';
export * from './tensor.js';
export { loadNative, packageRoot } from './native.js';
export * as ops from './ops.js';
