// Tool calls: schemas, call syntax (parse/format), the BFCL AST checker, scoring and rewards.
export { PyFloat, pyType, pyEquals, pyIn, plain, formatPyValue, formatJsonValue } from './values.js';
export type { PyType } from './values.js';
export { parseCalls, parsePythonCalls, parseJsonCalls, parseHermesCalls, parseLiteral, stripFences } from './parse.js';
export type { ParseResult, ParseOptions, PartialCall, CallFormat, LiteralResult } from './parse.js';
export { formatCalls, formatPythonCall, formatPythonCalls, formatJsonCall, formatJsonCalls, formatHermesCalls } from './format.js';
export type { CallStyle } from './format.js';
export { normaliseTool, normaliseTools, jsonTypeOf, validateArguments, validateCall, toOpenAITool } from './schema.js';
export type { ArgumentCheck } from './schema.js';
export { checkAnswer, checkCalls, checkOneCall, checkerCategory, expectsNoCall, isIrrelevance, standardize, writtenType } from './checker.js';
export type { CheckResult } from './checker.js';
export { callsFromGroundTruth } from './truth.js';
export { reward, overlapReward, referenceAnswer, callCredit } from './reward.js';
export type { RewardOptions } from './reward.js';
export { scorePredictions, scoreSample, summarize, formatReport, decodeResult } from './score.js';
export type { SampleScore, CategoryScore, EvalReport, ScoreRun } from './score.js';
