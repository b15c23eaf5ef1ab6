// Difficulty buckets: simple → multiple → parallel → parallel_multiple, irrelevance apart,
// multi_turn for conversations with more than one exchange. The warm-up SFT trains them
// easy to hard.
import type { Category, GroundTruthCall, JsonSchema, Sample, ToolCall, ToolSchema } from './sample.js';

/** Buckets from easiest to hardest, as the warm-up stages use them. */
export const BUCKETS: readonly Category[] = ['simple', 'multiple', 'parallel', 'parallel_multiple', 'irrelevance', 'multi_turn'];

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
 * The bucket a sample belongs to, from its shape: no call → irrelevance; one call → simple
 * (one tool offered) or multiple; several calls → parallel (one tool offered) or
 * parallel_multiple; more than one user turn or a tool result in the conversation → multi_turn.
 */
export function bucketOf(s: Sample): Category {
  const users = s.messages.filter((m) => m.role === 'user').length;
  const toolTurns = s.messages.filter((m) => m.role === 'tool').length;
  if (users > 1 || toolTurns > 0) return 'multi_turn';
  const gt = groundTruthOf(s);
  if (gt.length === 0) return 'irrelevance';
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
