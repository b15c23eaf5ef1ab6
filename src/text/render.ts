// Rendering a sample through the model's chat template into token ids with a loss mask,
// and into a prompt plus answer steps for the tree search.
//
// Where an assistant turn starts and ends is read off the rendered text itself, never by
// guessing token counts:
//   start: the template renders messages[0..i) with add_generation_prompt; the assistant
//          turn i starts where that prefix stops agreeing with the full rendering (so the
//          generation prompt, e.g. '<|im_start|>assistant\n', belongs to the prompt);
//   end:   just after the first turn-end token ('<|im_end|>', '<|eot_id|>', eos...) at or
//          after the start (the model must learn to stop).
// Character spans become token spans through each token's character offsets: a token is
// masked when it starts inside an assistant span.
import type { Message, Sample, ToolSchema } from '../data/sample.js';
import { splitStepSpans, type StepOptions } from './steps.js';
import { TemplateError, toHfMessages, toHfTools, type ChatTemplate } from './template.js';
import type { Tokenizer } from './tokenizer.js';

export interface RenderOptions {
  /** extra chat-template variables, e.g. { enable_thinking: false } */
  kwargs?: Record<string, unknown>;
}

export interface AssistantSpan {
  /** index of the assistant message in sample.messages */
  messageIndex: number;
  /** [start, end) in characters of the rendered text; end is just after the turn-end token */
  start: number;
  end: number;
  /** [tokenStart, tokenEnd) in ids */
  tokenStart: number;
  tokenEnd: number;
}

export interface Rendered {
  ids: number[];
  /** 1 on every token the model must produce (assistant text, tool calls, turn-end token), else 0 */
  mask: number[];
  /** tokens before the last assistant turn (the answer) */
  promptLength: number;
  /** the rendered text (after the tokenizer's Unicode normalization, if any) */
  text: string;
  spans: AssistantSpan[];
}

export interface SearchStep {
  text: string;
  /** [start, end) in characters of `answer` */
  start: number;
  end: number;
  /** [tokenStart, tokenEnd) in answerIds: the tokens that end inside this step */
  tokenStart: number;
  tokenEnd: number;
}

export interface RenderedForSearch {
  /** everything up to and including the generation prompt of the last assistant turn */
  prompt: string;
  promptIds: number[];
  /** the last assistant turn as the model writes it, without the turn-end token */
  answer: string;
  answerIds: number[];
  /** the turn-end token's text and ids (e.g. '<|im_end|>') */
  end: string;
  endIds: number[];
  steps: SearchStep[];
}

export interface SearchOptions extends RenderOptions, StepOptions {}

function templateOf(tok: Tokenizer): ChatTemplate {
  if (!tok.chatTemplate) throw new TemplateError(`no chat template: ${tok.files.config} has no chat_template and there is no chat_template.jinja`);
  return tok.chatTemplate;
}

function checkSample(sample: Sample): void {
  if (!sample || typeof sample !== 'object') throw new TemplateError('sample must be an object');
  if (!Array.isArray(sample.messages)) throw new TemplateError(`sample ${sample.id ?? '?'}: messages must be an array`);
  if (sample.messages.length === 0) throw new TemplateError(`sample ${sample.id ?? '?'}: no messages`);
}

function commonPrefix(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

interface CharSpan {
  messageIndex: number;
  start: number;
  /** where the turn-end token starts */
  endTokenStart: number;
  end: number;
}

/** The rendered text and the character spans of the chosen assistant messages. */
function assistantCharSpans(
  tok: Tokenizer,
  messages: readonly Message[],
  tools: readonly ToolSchema[] | undefined,
  kwargs: Record<string, unknown> | undefined,
  onlyLast: boolean,
): { text: string; spans: CharSpan[] } {
  const tpl = templateOf(tok);
  const hm = toHfMessages(messages);
  const ht = toHfTools(tools);
  const text = tok.normalize(tpl.renderHf(hm, ht, false, kwargs));
  const ends = tok.turnEndTokens.filter((s) => s.length > 0);
  if (ends.length === 0) throw new TemplateError(`${tok.files.config}: no turn-end token (eos_token) is known, so assistant turns cannot be delimited`);
  const spans: CharSpan[] = [];
  let prevEnd = 0;
  const last = hm.length - 1;
  for (let i = 0; i < hm.length; i++) {
    if (hm[i].role !== 'assistant' || (onlyLast && i !== last)) continue;
    if (i === 0) throw new TemplateError('an assistant message cannot be the first message: nothing prompts it');
    const prefix = tok.normalize(tpl.renderHf(hm.slice(0, i), ht, true, kwargs));
    const start = commonPrefix(text, prefix);
    if (start < prevEnd || start === text.length) {
      throw new TemplateError(`chat template in ${tpl.file}: the prompt for message ${i} does not match the full rendering; cannot find where the assistant turn starts`);
    }
    let endTokenStart = -1;
    let endLen = 0;
    for (const e of ends) {
      const at = text.indexOf(e, start);
      if (at >= 0 && (endTokenStart < 0 || at < endTokenStart)) {
        endTokenStart = at;
        endLen = e.length;
      }
    }
    if (endTokenStart < 0) {
      throw new TemplateError(`chat template in ${tpl.file}: assistant message ${i} is not closed by a turn-end token (${ends.join(', ')})`);
    }
    const end = endTokenStart + endLen;
    // guard against templates that are not prefix-stable (e.g. ones that move the tools
    // before the last user message): then the span would swallow the message before it
    const before = hm[i - 1];
    const own = hm[i].content + JSON.stringify(hm[i].tool_calls ?? []);
    if (before.role !== 'assistant' && before.content.length >= 4 && !own.includes(before.content) && text.slice(start, endTokenStart).includes(before.content)) {
      throw new TemplateError(
        `chat template in ${tpl.file}: the rendering of messages before ${i} changes when more messages follow, so assistant message ${i} cannot be delimited (its span would include message ${i - 1})`,
      );
    }
    spans.push({ messageIndex: i, start, endTokenStart, end });
    prevEnd = end;
  }
  return { text, spans };
}

/** Token ids, loss mask and prompt length of a sample rendered through the chat template. */
export function render(tok: Tokenizer, sample: Sample, opts: RenderOptions = {}): Rendered {
  checkSample(sample);
  const { text, spans } = assistantCharSpans(tok, sample.messages, sample.tools, opts.kwargs, false);
  const ids = tok.encode(text);
  const offs = tok.offsets(text, ids);
  const mask = new Array<number>(ids.length).fill(0);
  const out: AssistantSpan[] = [];
  let t = 0;
  for (const s of spans) {
    while (t < ids.length && offs[t][0] < s.start) t++;
    const tokenStart = t;
    while (t < ids.length && offs[t][0] < s.end) mask[t++] = 1;
    out.push({ messageIndex: s.messageIndex, start: s.start, end: s.end, tokenStart, tokenEnd: t });
  }
  const promptLength = out.length > 0 ? out[out.length - 1].tokenStart : ids.length;
  return { ids, mask, promptLength, text, spans: out };
}

/**
 * The prompt (everything up to and including the last assistant turn's generation prompt),
 * the answer and its steps with character and token spans. The answer's token ids are the
 * answer encoded on its own, as the model produces it after the prompt.
 */
export function renderForSearch(tok: Tokenizer, sample: Sample, opts: SearchOptions = {}): RenderedForSearch {
  checkSample(sample);
  const msgs = sample.messages;
  if (msgs[msgs.length - 1].role !== 'assistant') {
    throw new TemplateError(`sample ${sample.id ?? '?'}: the last message must be the assistant's answer for renderForSearch (got ${msgs[msgs.length - 1].role})`);
  }
  const { text, spans } = assistantCharSpans(tok, msgs, sample.tools, opts.kwargs, true);
  const s = spans[0];
  const prompt = text.slice(0, s.start);
  const answer = text.slice(s.start, s.endTokenStart);
  const end = text.slice(s.endTokenStart, s.end);
  const promptIds = tok.encode(prompt);
  const answerIds = tok.encode(answer);
  const endIds = tok.encode(end);
  const offs = tok.offsets(answer, answerIds);
  const steps: SearchStep[] = [];
  let t = 0;
  for (const st of splitStepSpans(answer, opts)) {
    const tokenStart = t;
    while (t < answerIds.length && offs[t][1] <= st.end) t++;
    steps.push({ ...st, tokenStart, tokenEnd: t });
  }
  if (steps.length > 0) steps[steps.length - 1].tokenEnd = answerIds.length;
  return { prompt, promptIds, answer, answerIds, end, endIds, steps };
}

/**
 * The prompt for generation: the messages rendered with add_generation_prompt. A trailing
 * assistant message is left out (its answer is what is to be generated).
 */
export function renderPrompt(
  tok: Tokenizer,
  messages: readonly Message[],
  tools?: readonly ToolSchema[],
  opts: RenderOptions = {},
): { text: string; ids: number[] } {
  if (!Array.isArray(messages) || messages.length === 0) throw new TemplateError('renderPrompt: messages must be a non-empty array');
  const msgs = messages[messages.length - 1].role === 'assistant' ? messages.slice(0, -1) : messages;
  const text = tok.normalize(templateOf(tok).renderHf(toHfMessages(msgs), toHfTools(tools), true, opts.kwargs));
  return { text, ids: tok.encode(text) };
}

/** The rendered chat text (no tokenization), as apply_chat_template(tokenize=False) gives it. */
export function renderText(
  tok: Tokenizer,
  messages: readonly Message[],
  tools?: readonly ToolSchema[],
  opts: RenderOptions & { addGenerationPrompt?: boolean } = {},
): string {
  return templateOf(tok).renderHf(toHfMessages(messages), toHfTools(tools), opts.addGenerationPrompt ?? false, opts.kwargs);
}
