export * from './engine.js';
export * from './tensor.js';
export { loadNative, packageRoot } from './native.js';
