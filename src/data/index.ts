// Tool-use data: the Sample type, loaders/writers for BFCL, ShareGPT/ToolACE, xLAM and OpenAI
// formats, difficulty buckets and the synthetic generator.
export type { Sample, ToolSchema, ToolCall, Message, GroundTruthCall, Category, JsonSchema } from './sample.js';
export { BUCKETS, bucketOf, byBucket, categoryOfBfcl, groundTruthOf, truthFromCalls } from './buckets.js';
export { answersOf, isSplitAnswer, splitAnswers } from './answers.js';
export {
  detectFormat,
  fromBfcl,
  fromOpenAI,
  fromRow,
  fromShareGPT,
  fromXlam,
  groundTruthFromCalls,
  loadBfclDir,
  loadBfclFile,
  loadSamples,
  parseSamples,
  saveSamples,
  shareGPTSystemPrompt,
  toBfcl,
  toOpenAI,
  toRow,
  toShareGPT,
  toXlam,
  toolsFromSystemPrompt,
} from './formats.js';
export type { DataFormat } from './formats.js';
export { readRows, parseRows, writeFileAtomic, writeJson, writeJsonl, writeRows } from './io.js';
export { synthesize, synthTools, synthDomains } from './synth.js';
export type { SynthOptions, Split } from './synth.js';
