// The one Sample type every loader, writer, renderer, trainer and the search share.
// A sample is one conversation with its ground truth.

/** JSON Schema subset used by tool parameters (OpenAI style after normalisation). */
export interface JsonSchema {
  type?: string | string[];
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  default?: unknown;
  [key: string]: unknown;
}

/** A tool in OpenAI function format (BFCL's dialect is normalised into this). */
export interface ToolSchema {
  name: string;
  description?: string;
  parameters: JsonSchema; // type 'object'
}

export interface ToolCall {
  name: string;
  arguments: Record<string, unknown>;
}

export type Message =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  | { role: 'assistant'; content?: string; toolCalls?: ToolCall[] }
  | { role: 'tool'; content: string; name?: string; toolCallId?: string };

export type Category =
  | 'simple'
  | 'multiple'
  | 'parallel'
  | 'parallel_multiple'
  | 'irrelevance'
  | 'multi_turn'
  | (string & {});

/**
 * BFCL possible_answer style ground truth: one entry per expected call, each
 * { functionName: { param: [accepted values...] } }. An accepted value "" marks an
 * optional parameter that may be absent.
 */
export type GroundTruthCall = Record<string, Record<string, unknown[]>>;

export interface Sample {
  id: string;
  category: Category;
  /** BFCL test category name when the sample comes from BFCL (e.g. 'simple_python', 'live_multiple') */
  bfclCategory?: string;
  tools: ToolSchema[];
  /**
   * The conversation. For training the last message is the assistant's answer; for
   * evaluation the messages end with the user turn to answer.
   */
  messages: Message[];
  /** Accepted answers; absent: derived from the last assistant message's tool calls. */
  groundTruth?: GroundTruthCall[];
}
