export * from './engine.js';
export * from './tensor.js';
export { loadNative, packageRoot } from './native.js';
export * as ops from './ops.js';
export { createModel, loadModel, readModelConfig, type NativeModel, type CreateModelOptions, type LoadModelOptions } from './model.js';
export { parseHfConfig, toHfConfig, tinyConfig, llamaConfig, checkConfig, ARCHITECTURES } from './config.js';
export type * from './model-types.js';
export { readSafetensors, writeSafetensors, checkpointShards, type SafetensorsTensor, type SafetensorsContents } from './safetensors.js';
