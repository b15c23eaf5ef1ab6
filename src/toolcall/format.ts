// Tool-call syntax: writing calls in the three forms that parse.ts reads back.
import type { ToolCall } from '../data/sample.js';
import { formatJsonValue, formatPyValue } from './values.js';

/** `name(a=1, b="x")` */
export function formatPythonCall(call: ToolCall): string {
  const args = Object.entries(call.arguments ?? {})
    .map(([k, v]) => `${k}=${formatPyValue(v)}`)
    .join(', ');
  return `${call.name}(${args})`;
}

/** `[f(a=1), g(b="x")]`, the form of BFCL ground truths and ToolACE answers. */
export function formatPythonCalls(calls: readonly ToolCall[]): string {
  return '[' + calls.map(formatPythonCall).join(', ') + ']';
}

/** `{"name": "f", "arguments": {...}}` */
export function formatJsonCall(call: ToolCall): string {
  return `{"name": ${JSON.stringify(call.name)}, "arguments": ${formatJsonValue(call.arguments ?? {})}}`;
}

/** One JSON call when there is one, else a JSON list of them. */
export function formatJsonCalls(calls: readonly ToolCall[]): string {
  if (calls.length === 1) return formatJsonCall(calls[0]!);
  return '[' + calls.map(formatJsonCall).join(', ') + ']';
}

/** Hermes blocks, one per call, separated by newlines (the Qwen chat templates' form). */
export function formatHermesCalls(calls: readonly ToolCall[]): string {
  return calls.map((c) => `<tool_call>\n${formatJsonCall(c)}\n</tool_call>`).join('\n');
}

export type CallStyle = 'python' | 'json' | 'hermes';

export function formatCalls(calls: readonly ToolCall[], style: CallStyle): string {
  return style === 'python' ? formatPythonCalls(calls) : style === 'json' ? formatJsonCalls(calls) : formatHermesCalls(calls);
}
