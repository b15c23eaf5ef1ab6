// Ground truths as calls: the first accepted value of each parameter (a parameter whose only
// accepted value is "" is left out), recursing into dict answers, whose inner keys list
// accepted values too.
import type { GroundTruthCall, JsonSchema, ToolCall, ToolSchema } from '../data/sample.js';
import { setKey } from './values.js';

function isAcceptedMap(v: unknown): v is Record<string, unknown[]> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => Array.isArray(x));
}

/** First accepted value that is not "" (undefined when "" is all there is). */
function firstAccepted(acc: readonly unknown[]): unknown {
  for (const a of acc) if (a !== '') return a;
  return undefined;
}

function concrete(v: unknown, schema: JsonSchema | undefined): unknown {
  const t = schema?.type;
  const isDict = t === 'object' || (t === undefined && isAcceptedMap(v));
  if (isDict && isAcceptedMap(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, acc] of Object.entries(v)) {
      const x = firstAccepted(acc);
      if (x !== undefined) setKey(out, k, concrete(x, schema?.properties?.[k]));
    }
    return out;
  }
  if (Array.isArray(v)) {
    const items = schema?.items;
    if (items?.type === 'object' || (items === undefined && v.length > 0 && v.every(isAcceptedMap))) return v.map((e) => concrete(e, items));
    return v;
  }
  return v;
}

/** The calls a ground truth describes, each parameter at its first accepted value. */
export function callsFromGroundTruth(truth: readonly GroundTruthCall[], tools: readonly ToolSchema[] = []): ToolCall[] {
  return truth.map((gt) => {
    const name = Object.keys(gt)[0] ?? '';
    const params = gt[name] ?? {};
    const tool = tools.find((t) => t.name === name);
    const args: Record<string, unknown> = {};
    for (const [k, acc] of Object.entries(params)) {
      const list = Array.isArray(acc) ? acc : [acc];
      const x = firstAccepted(list);
      if (x !== undefined) setKey(args, k, concrete(x, tool?.parameters.properties?.[k]));
    }
    return { name, arguments: args };
  });
}
