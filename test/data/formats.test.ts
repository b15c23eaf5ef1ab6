// Loaders: one small hand-written file per format, checked field by field; writers round-trip.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  bucketOf,
  detectFormat,
  groundTruthOf,
  loadSamples,
  parseRows,
  parseSamples,
  saveSamples,
  toBfcl,
  toOpenAI,
  toShareGPT,
  toXlam,
} from '../../src/data/index.js';
import { PyFloat, checkAnswer } from '../../src/toolcall/index.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'data');
const tmp = mkdtempSync(path.join(tmpdir(), 'itool-data-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('ShareGPT / ToolACE', () => {
  const s = loadSamples(path.join(fixtures, 'toolace.json'));
  it('reads tools from the system prompt, calls in Python syntax (names with spaces too)', () => {
    expect(s.length).toBe(3);
    const a = s[0]!;
    expect(a.id).toBe('toolace_0');
    expect(a.category).toBe('parallel_multiple');
    expect(a.tools.map((t) => t.name)).toEqual(['Market Trends API', 'convert']);
    expect(a.tools[0]!.description).toBe('Get the latest market trends');
    expect(a.tools[0]!.parameters).toEqual({
      type: 'object',
      'x-bfcl-type': 'dict',
      properties: { trend_type: { description: 'Trend type', type: 'string' }, country: { description: 'Country code', type: 'string', default: 'us' } },
      required: ['trend_type'],
    });
    expect(a.tools[1]!.parameters.properties!.amount).toEqual({ type: 'number', 'x-bfcl-type': 'float', description: 'Amount' });
    expect(a.messages).toEqual([
      { role: 'user', content: 'Show me the market gainers in Germany, and convert 10.5 into EUR and GBP.' },
      {
        role: 'assistant',
        toolCalls: [
          { name: 'Market Trends API', arguments: { trend_type: 'gainers', country: 'de' } },
          { name: 'convert', arguments: { amount: 10.5, to: ['EUR', 'GBP'] } },
        ],
      },
    ]);
    expect(groundTruthOf(a)).toEqual([{ 'Market Trends API': { trend_type: ['gainers'], country: ['de'] } }, { convert: { amount: [10.5], to: [['EUR', 'GBP']] } }]);
    expect(checkAnswer(a, '[convert(amount=10.5, to=["eur", "gbp"]), Market Trends API(trend_type="Gainers", country="DE")]').valid).toBe(true);
  });
  it('keeps tool results and text answers; reply and irrelevance buckets', () => {
    const b = s[1]!;
    expect(b.id).toBe('toolace-2');
    // its last answer is the text reply after the tool result (data/answers.ts)
    expect(b.category).toBe('reply');
    expect(b.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant']);
    expect(b.messages[1]).toEqual({ role: 'assistant', toolCalls: [{ name: 'get_time', arguments: { tz: 'Asia/Tokyo' } }] });
    expect(b.messages[2]).toEqual({ role: 'tool', content: '[{"name": "get_time", "results": {"time": "09:00"}}]' });
    expect(b.messages[3]).toEqual({ role: 'assistant', content: 'It is 9 in the morning in Tokyo.' });
    const c = s[2]!;
    expect(c.category).toBe('irrelevance');
    expect(c.messages).toEqual([
      { role: 'user', content: 'Write me a haiku.' },
      { role: 'assistant', content: 'The functions cannot write poems.' },
    ]);
    expect(groundTruthOf(c)).toEqual([]);
  });
  it('writes ToolACE rows that read back the same', () => {
    const row = toShareGPT(s[0]!) as { system: string; conversations: Array<{ from: string; value: string }> };
    expect(row.conversations[1]!.value).toBe('[Market Trends API(trend_type="gainers", country="de"), convert(amount=10.5, to=["EUR", "GBP"])]');
    expect(row.system).toContain('"name":"Market Trends API"');
    const back = parseSamples(JSON.stringify(row), undefined, 'x')[0]!;
    expect(back.tools).toEqual(s[0]!.tools);
    expect(back.messages).toEqual(s[0]!.messages);
  });
});

describe('xLAM / APIGen', () => {
  const s = loadSamples(path.join(fixtures, 'xlam.jsonl'));
  it('reads query, tools (JSON string or list, flat parameter maps) and answers', () => {
    expect(s.length).toBe(2);
    const a = s[0]!;
    expect(a.id).toBe('7');
    expect(a.category).toBe('parallel');
    expect(a.tools).toEqual([
      {
        name: 'live_giveaways_by_type',
        description: 'Retrieve live giveaways from the GamerPower API based on the specified type.',
        parameters: {
          type: 'object',
          properties: { type: { description: 'The type of giveaways to retrieve (e.g., game, loot, beta).', type: 'string', 'x-bfcl-type': 'str', default: 'game' } },
          required: [],
        },
      },
    ]);
    expect(a.messages).toEqual([
      { role: 'user', content: 'Where can I find live giveaways for beta access and games?' },
      { role: 'assistant', toolCalls: [{ name: 'live_giveaways_by_type', arguments: { type: 'beta' } }, { name: 'live_giveaways_by_type', arguments: { type: 'game' } }] },
    ]);
    const b = s[1]!;
    expect(b.category).toBe('parallel_multiple');
    expect(b.tools[1]!.parameters.required).toEqual(['n']);
    expect(b.tools[1]!.parameters.properties!.start).toEqual({ type: 'array', 'x-bfcl-type': 'List[int]', description: 'from', items: { type: 'integer' } });
    expect(b.tools[0]!.parameters.properties!.a!.type).toBe('number');
  });
  it('writes rows with JSON-string tools and answers', () => {
    const row = toXlam(s[0]!) as { query: string; tools: string; answers: string };
    expect(row.query).toBe('Where can I find live giveaways for beta access and games?');
    expect(JSON.parse(row.answers)).toEqual([{ name: 'live_giveaways_by_type', arguments: { type: 'beta' } }, { name: 'live_giveaways_by_type', arguments: { type: 'game' } }]);
    expect(parseSamples(JSON.stringify(row))[0]!.messages).toEqual(s[0]!.messages);
  });
});

describe('OpenAI messages', () => {
  const s = loadSamples(path.join(fixtures, 'openai.jsonl'));
  it('reads messages with tool_calls (JSON-string arguments), tool results and tools', () => {
    expect(s.length).toBe(2);
    const a = s[0]!;
    expect(a.id).toBe('openai_0');
    expect(a.category).toBe('simple');
    expect(a.tools).toEqual([
      { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city'] } },
    ]);
    expect(a.messages).toEqual([
      { role: 'system', content: 'You are helpful.' },
      { role: 'user', content: 'Weather in Paris in celsius?' },
      { role: 'assistant', toolCalls: [{ name: 'get_weather', arguments: { city: 'Paris', unit: 'celsius' } }] },
    ]);
    const b = s[1]!;
    expect(b.id).toBe('multi');
    expect(b.category).toBe('reply');
    expect(b.messages[2]).toEqual({ role: 'tool', content: '{"temp": 21}', toolCallId: 'c1' });
    expect(b.messages[3]).toEqual({ role: 'assistant', content: 'It is 21 degrees in Rome.' });
  });
  it('writes OpenAI rows that read back the same', () => {
    const row = toOpenAI(s[0]!) as { messages: Array<Record<string, unknown>>; tools: unknown[] };
    expect(row.messages[2]).toEqual({ role: 'assistant', content: null, tool_calls: [{ id: 'call_0', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris", "unit": "celsius"}' } }] });
    expect(row.tools).toEqual([{ type: 'function', function: s[0]!.tools[0] }]);
    const back = parseSamples(JSON.stringify(row))[0]!;
    expect(back.messages).toEqual(s[0]!.messages);
    expect(back.tools).toEqual(s[0]!.tools);
  });
});

describe('BFCL question + possible_answer', () => {
  const s = loadSamples(path.join(fixtures, 'bfcl'));
  it('reads questions, tools in the BFCL dialect and accepted values (floats stay floats)', () => {
    expect(s.map((x) => x.id)).toEqual(['irrelevance_0', 'parallel_0', 'parallel_1']);
    const irr = s[0]!;
    expect(irr.category).toBe('irrelevance');
    expect(irr.bfclCategory).toBe('irrelevance');
    expect(irr.groundTruth).toEqual([]);
    const p = s[1]!;
    expect(p.category).toBe('parallel');
    expect(p.bfclCategory).toBe('parallel');
    expect(p.messages).toEqual([{ role: 'user', content: 'Play songs by Taylor Swift and Maroon 5 for 20 and 15 minutes.' }]);
    expect(p.tools[0]!.parameters.properties).toEqual({
      artist: { type: 'string', description: 'The artist.' },
      duration: { type: 'integer', description: 'Minutes.' },
      volume: { type: 'number', 'x-bfcl-type': 'float', description: 'Volume', default: 0.5 },
    });
    expect(p.groundTruth).toEqual([
      { 'spotify.play': { artist: ['taylor swift'], duration: [20], volume: ['', 0.5] } },
      { 'spotify.play': { artist: ['maroon 5'], duration: [15], volume: ['', 0.5] } },
    ]);
    const radius = (s[2]!.groundTruth![0]!['circle.area']!.radius as unknown[])[0];
    expect(radius).toBeInstanceOf(PyFloat);
    expect((radius as PyFloat).value).toBe(2);
    expect(s[2]!.tools[0]!.parameters.properties!.center).toEqual({ type: 'array', 'x-bfcl-type': 'tuple', description: 'c', items: { type: 'integer' } });
    expect(checkAnswer(p, '[spotify.play(artist="Maroon 5", duration=15), spotify.play(artist="Taylor Swift", duration=20, volume=0.5)]').valid).toBe(true);
  });
  it('writes BFCL question and answer rows', () => {
    const { question, answer } = toBfcl(s[1]!);
    expect(question).toEqual({
      id: 'parallel_0',
      question: [[{ role: 'user', content: 'Play songs by Taylor Swift and Maroon 5 for 20 and 15 minutes.' }]],
      function: [{ name: 'spotify.play', description: 'Play songs from an artist.', parameters: { ...s[1]!.tools[0]!.parameters, type: 'dict' } }],
    });
    expect(answer.ground_truth).toBe(s[1]!.groundTruth);
  });
});

describe('files, detection and errors', () => {
  it('detects each format by its fields', () => {
    expect(detectFormat({ question: [], function: [] })).toBe('bfcl');
    expect(detectFormat({ conversations: [] })).toBe('sharegpt');
    expect(detectFormat({ query: 'q', answers: [] })).toBe('xlam');
    expect(detectFormat({ messages: [] })).toBe('openai');
    expect(detectFormat(42)).toBeUndefined();
  });
  it('saves JSON and JSONL atomically and reads both back', () => {
    const s = loadSamples(path.join(fixtures, 'openai.jsonl'));
    for (const [file, fmt] of [
      ['a.jsonl', 'sharegpt'],
      ['b.json', 'openai'],
      ['c.jsonl', 'xlam'],
      ['d.jsonl', 'sample'],
    ] as const) {
      const f = path.join(tmp, file);
      saveSamples(f, s.slice(0, 1), fmt);
      const text = readFileSync(f, 'utf8');
      expect(text.startsWith(file.endsWith('.json') ? '[' : '{')).toBe(true);
      const back = loadSamples(f);
      expect(back[0]!.messages.filter((m) => m.role !== 'system')).toEqual(s[0]!.messages.filter((m) => m.role !== 'system'));
      expect(back[0]!.tools.map((t) => t.name)).toEqual(['get_weather']);
    }
  });
  it('bad input gives errors naming the file, row and problem', () => {
    const f = path.join(tmp, 'bad.jsonl');
    writeFileSync(f, '{"messages": []}\n{not json\n');
    expect(() => loadSamples(f)).toThrow(/bad\.jsonl:2: not valid JSON/);
    writeFileSync(f, '{"query": 1, "answers": []}\n');
    expect(() => loadSamples(f)).toThrow(/bad\.jsonl: row 1: .*'query'/);
    writeFileSync(f, '{"conversations": [{"from": "alien", "value": "x"}]}\n');
    expect(() => loadSamples(f)).toThrow(/unknown speaker 'alien'/);
    expect(() => loadSamples(path.join(tmp, 'missing.jsonl'))).toThrow(/no such file/);
    expect(parseRows('')).toEqual([]);
  });
  it('buckets by shape', () => {
    const base = { id: 'x', category: 'simple', messages: [{ role: 'user' as const, content: 'q' }] };
    const t = { name: 'f', parameters: { type: 'object' } };
    expect(bucketOf({ ...base, tools: [t], groundTruth: [{ f: {} }] })).toBe('simple');
    expect(bucketOf({ ...base, tools: [t, { ...t, name: 'g' }], groundTruth: [{ f: {} }] })).toBe('multiple');
    expect(bucketOf({ ...base, tools: [t], groundTruth: [{ f: {} }, { f: {} }] })).toBe('parallel');
    expect(bucketOf({ ...base, tools: [t, { ...t, name: 'g' }], groundTruth: [{ f: {} }, { g: {} }] })).toBe('parallel_multiple');
    expect(bucketOf({ ...base, tools: [t], groundTruth: [] })).toBe('irrelevance');
  });
});
