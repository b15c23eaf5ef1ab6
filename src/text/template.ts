// Chat templates, rendered with @huggingface/jinja from the model directory's own template
// with the inputs Hugging Face's apply_chat_template passes: messages in the OpenAI/HF shape,
// tools as [{type: 'function', function: schema}], add_generation_prompt, the special-token
// strings and any extra template kwargs (enable_thinking, ...).
import { Template } from '@huggingface/jinja';
import type { Message, ToolCall, ToolSchema } from '../data/sample.js';

export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateError';
  }
}

export interface HfToolCall {
  type: 'function';
  id?: string;
  function: { name: string; arguments: Record<string, unknown> | string };
}

export interface HfMessage {
  role: string;
  content: string;
  tool_calls?: HfToolCall[];
  name?: string;
  tool_call_id?: string;
}

export interface HfTool {
  type: 'function';
  function: ToolSchema;
}

const ROLES = new Set(['system', 'user', 'assistant', 'tool']);

/**
 * Converts the project's messages (camelCase `toolCalls` with {name, arguments}) into the
 * shape Hugging Face templates expect. An assistant message without content gets content ''
 * (templates test `'</think>' in message.content`, which fails on None).
 */
export function toHfMessages(messages: readonly Message[]): HfMessage[] {
  if (!Array.isArray(messages)) throw new TemplateError('messages must be an array');
  return messages.map((m, i) => {
    if (!m || typeof m !== 'object') throw new TemplateError(`message ${i} is not an object`);
    const role = (m as { role?: unknown }).role;
    if (typeof role !== 'string' || !ROLES.has(role)) {
      throw new TemplateError(`message ${i} has unknown role ${JSON.stringify(role)} (expected system, user, assistant or tool)`);
    }
    const content = (m as { content?: unknown }).content;
    if (content !== undefined && content !== null && typeof content !== 'string') {
      throw new TemplateError(`message ${i} (${role}): content must be a string`);
    }
    const out: HfMessage = { role, content: content ?? '' };
    if (m.role === 'assistant' && m.toolCalls !== undefined) {
      if (!Array.isArray(m.toolCalls)) throw new TemplateError(`message ${i} (assistant): toolCalls must be an array`);
      if (m.toolCalls.length > 0) {
        out.tool_calls = (m.toolCalls as ToolCall[]).map((c: ToolCall, k: number): HfToolCall => {
          if (!c || typeof c.name !== 'string') throw new TemplateError(`message ${i} (assistant): tool call ${k} has no name`);
          const args = c.arguments ?? {};
          if (typeof args !== 'object' || Array.isArray(args)) {
            throw new TemplateError(`message ${i} (assistant): tool call ${k} (${c.name}) arguments must be an object`);
          }
          return { type: 'function', function: { name: c.name, arguments: args } };
        });
      }
    } else if (m.role !== 'assistant' && m.role !== 'tool' && (m as { content?: unknown }).content === undefined) {
      throw new TemplateError(`message ${i} (${role}) has no content`);
    }
    if (m.role === 'tool') {
      if (m.name !== undefined) out.name = m.name;
      if (m.toolCallId !== undefined) out.tool_call_id = m.toolCallId;
    }
    return out;
  });
}

export function toHfTools(tools: readonly ToolSchema[] | undefined): HfTool[] | undefined {
  if (tools === undefined || tools === null) return undefined;
  if (!Array.isArray(tools)) throw new TemplateError('tools must be an array of tool schemas');
  return tools.map((t, i) => {
    if (!t || typeof t.name !== 'string') throw new TemplateError(`tool ${i} has no name`);
    return { type: 'function', function: t };
  });
}

export interface ChatRenderOptions {
  tools?: readonly ToolSchema[];
  addGenerationPrompt?: boolean;
  /** extra template variables, e.g. { enable_thinking: false } */
  kwargs?: Record<string, unknown>;
}

export class ChatTemplate {
  readonly source: string;
  readonly file: string;
  private readonly template: Template;
  private readonly toolUse: Template | null;
  private readonly globals: Record<string, unknown>;

  constructor(source: string, file: string, globals: Record<string, unknown> = {}, toolUseSource?: string) {
    this.source = source;
    this.file = file;
    this.globals = globals;
    try {
      this.template = new Template(source);
      this.toolUse = toolUseSource !== undefined ? new Template(toolUseSource) : null;
    } catch (e) {
      throw new TemplateError(`chat template in ${file} does not parse: ${(e as Error).message}`);
    }
  }

  /** Renders messages already in the HF shape. */
  renderHf(messages: HfMessage[], tools: HfTool[] | undefined, addGenerationPrompt: boolean, kwargs: Record<string, unknown> = {}): string {
    const tpl = tools && tools.length > 0 && this.toolUse ? this.toolUse : this.template;
    const ctx: Record<string, unknown> = {
      ...this.globals,
      ...kwargs,
      messages,
      add_generation_prompt: addGenerationPrompt,
    };
    // transformers passes tools=None when none are given
    ctx.tools = tools && tools.length > 0 ? tools : null;
    try {
      return tpl.render(ctx);
    } catch (e) {
      throw new TemplateError(`chat template in ${this.file} failed to render: ${(e as Error).message}`);
    }
  }

  render(messages: readonly Message[], opts: ChatRenderOptions = {}): string {
    return this.renderHf(toHfMessages(messages), toHfTools(opts.tools), opts.addGenerationPrompt ?? false, opts.kwargs);
  }
}
