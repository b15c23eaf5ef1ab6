// Difficulty buckets: simple → multiple → parallel → parallel_multiple, irrelevance (no call
// fits) and reply (a text answer after a tool result) apart, multi_turn for call answers after
// an earlier exchange. The warm-up SFT trains them easy to hard. Which turns are answers:
// ./answers.ts.
import type { Category, GroundTruthCall, JsonSchema, Sample, ToolCall, ToolSchema } from './sample.js';

/** Buckets from easiest to hardest, as the warm-up stages use them. */
export const BUCKETS: readonly Category[] = ['simple', 'multiple', 'parallel', 'parallel_multiple', 'irrelevance', 'reply', 'multi_turn'];

/** The bucket of a BFCL test category name (e.g. 'live_parallel_multiple' → 'parallel_multiple'). */
export function categoryOfBfcl(name: string): Category {
  const n = name.replace(/^live_/, '');
  if (n.startsWith('multi_turn')) return 'multi_turn';
  if (n.includes('irrelevance') || n.includes('relevance')) return 'irrelevance';
  if (n.startsWith('parallel_multiple')) return 'parallel_multiple';
  if (n.startsWith('parallel')) return 'parallel';
  if (n.startsWith('multiple')) return 'multiple';
  return 'simple';
}

/**
 * The accepted answers of a sample: its groundTruth, or else the tool calls of its last
 * assistant message (each argument's value the one accepted value); [] when that message
 * makes no call (an irrelevance answer).
 */
export function groundTruthOf(s: Sample): GroundTruthCall[] {
  if (s.groundTruth) return s.groundTruth;
  for (let i = s.messages.length - 1; i >= 0; i--) {
    const m = s.messages[i]!;
    if (m.role !== 'assistant') continue;
    return truthFromCalls(m.toolCalls ?? [], s.tools);
  }
  return [];
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

function wrapDict(v: Record<string, unknown>): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const [k, x] of Object.entries(v)) out[k] = [x];
  return out;
}

/**
 * Ground truth from concrete calls: each argument's value is its one accepted value. Dict
 * values (and lists of dicts) take BFCL's form, where each inner key lists accepted values;
 * the tool's schema decides where known.
 */
export function truthFromCalls(calls: readonly ToolCall[], tools: readonly ToolSchema[] = []): GroundTruthCall[] {
  return calls.map((c) => {
    const props = tools.find((t) => t.name === c.name)?.parameters.properties ?? {};
    const params: Record<string, unknown[]> = {};
    for (const [k, v] of Object.entries(c.arguments)) {
      const sch = props[k] as JsonSchema | undefined;
      const t = sch?.type;
      if (isPlainObject(v) && (t === 'object' || t === undefined)) params[k] = [wrapDict(v)];
      else if (Array.isArray(v) && v.length > 0 && v.every(isPlainObject) && (sch?.items?.type === 'object' || (t === undefined && sch?.items === undefined)))
        params[k] = [v.map((x) => wrapDict(x as Record<string, unknown>))];
      else params[k] = [v];
    }
    return { [c.name]: params };
  });
}

/**
 * The bucket of a sample's answer (its ground truth, or else its last assistant turn), from the
 * answer's own shape (rule 5 of ./answers.ts): a call answer with an earlier exchange before it
 * (a tool result or an earlier assistant turn) → multi_turn; one call → simple (one tool
 * offered) or multiple; several calls → parallel (one tool) or parallel_multiple. A text answer
 * after a tool result → reply; any other answer without a call → irrelevance.
 */
export function bucketOf(s: Sample): Category {
  let end = s.messages.length;
  if (!s.groundTruth) {
    end = -1;
    for (let i = s.messages.length - 1; i >= 0; i--)
      if (s.messages[i]!.role === 'assistant') {
        end = i;
        break;
      }
    if (end < 0) end = s.messages.length;
  }
  const context = s.messages.slice(0, end);
  const toolResult = context.some((m) => m.role === 'tool');
  const gt = groundTruthOf(s);
  if (gt.length === 0) return toolResult ? 'reply' : 'irrelevance';
  const earlier = toolResult || context.some((m) => m.role === 'assistant') || context.filter((m) => m.role === 'user').length > 1;
  if (earlier) return 'multi_turn';
  if (gt.length === 1) return s.tools.length <= 1 ? 'simple' : 'multiple';
  return s.tools.length <= 1 ? 'parallel' : 'parallel_multiple';
}

/** Samples grouped by category, in BUCKETS order (other categories after). */
export function byBucket(samples: readonly Sample[]): Map<Category, Sample[]> {
  const m = new Map<Category, Sample[]>();
  for (const b of BUCKETS) m.set(b, []);
  for (const s of samples) {
    const c = s.category;
    if (!m.has(c)) m.set(c, []);
    m.get(c)!.push(s);
  }
  for (const [k, v] of m) if (v.length === 0) m.delete(k);
  return m;
}
