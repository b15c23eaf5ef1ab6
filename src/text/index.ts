// src/text: tokenizers (tokenizer.json), chat templates, rendering with loss masks and
// answer steps, and the byte-level BPE trainer for the built-in model.
export { Tokenizer, TokenizerError, loadTokenizer } from './tokenizer.js';
export type { AddedTokenInfo, EncodeOptions, DecodeOptions, TokenizerSources } from './tokenizer.js';
export { ChatTemplate, TemplateError, toHfMessages, toHfTools } from './template.js';
export type { HfMessage, HfTool, HfToolCall, ChatRenderOptions } from './template.js';
export { render, renderForSearch, renderPrompt, renderText } from './render.js';
export type { Rendered, RenderedForSearch, RenderOptions, SearchOptions, SearchStep, AssistantSpan } from './render.js';
export { splitSteps, splitStepSpans, DEFAULT_STEP_PATTERN } from './steps.js';
export type { StepOptions, StepSpan } from './steps.js';
export {
  trainBpe,
  writeTokenizer,
  writeFileAtomic,
  bytesToUnicode,
  HERMES_TEMPLATE,
  QWEN_SPLIT_REGEX,
  DEFAULT_SPECIAL_TOKENS,
  DEFAULT_ADDED_TOKENS,
} from './bpe.js';
export type { TrainBpeOptions, TrainedBpe } from './bpe.js';
