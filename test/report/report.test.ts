import { describe, expect, it } from 'vitest';
import { BUCKETS } from '../../src/data/buckets.js';
import { categoryNames, escapeHtml, renderReport, type ReportData } from '../../src/report/html.js';

export function fakeReport(): ReportData {
  const leaf = (id: number, depth: number, text: string, value: number) => ({ id, depth, text, tokens: 3, prior: 0.4, visits: 1, value, terminal: false, children: [] });
  return {
    title: 'itool demo <test>',
    subtitle: 'seed 1',
    seconds: 12.5,
    curves: [
      { phase: 'warm-up SFT', points: Array.from({ length: 30 }, (_, i) => ({ step: i, loss: 4 * Math.exp(-i / 10) + 0.5 })) },
      { phase: 'iteration 1 SimPO', points: [{ step: 0, loss: 0.9 }, { step: 1, loss: 0.7 }] },
    ],
    evaluations: [
      { label: 'warm-up', series: 'warmup', categories: { simple: { correct: 5, total: 10, accuracy: 0.5 }, parallel: { correct: 1, total: 10, accuracy: 0.1 } } },
      { label: 'iTool it 1', series: 'itool', categories: { simple: { correct: 6, total: 10, accuracy: 0.6 }, parallel: { correct: 2, total: 10, accuracy: 0.2 } } },
      { label: 'SFT baseline', series: 'baseline', categories: { simple: { correct: 5, total: 10, accuracy: 0.5 }, irrelevance: { correct: 3, total: 4, accuracy: 0.75 } } },
    ],
    iterations: [{ iteration: 1, selected: 20, nodes: 300, pairs: 42, chosenValues: [0.9, 0.5, 1], rejectedValues: [-1, 0.1, -0.5], seconds: 3 }],
    tree: {
      sampleId: 's<1>',
      prompt: 'what is the weather',
      root: { id: 0, depth: 0, text: '', tokens: 0, prior: 1, visits: 3, value: 0.2, terminal: false, children: [leaf(1, 1, '{"name": ', 1), leaf(2, 1, 'get_w(', -1), leaf(3, 1, 'x=', 0.5)] },
      pairs: [{ nodeId: 0, chosenNode: 1, rejectedNode: 2 }],
    },
  };
}

describe('report.html', () => {
  it('is one self-contained file with every section, category and escaped text', () => {
    const html = renderReport(fakeReport());
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/<script|<link|\bsrc=|\bhref=|url\(/i);
    for (const s of ['Accuracy by category', 'Loss curves', 'warm-up SFT', 'iteration 1 SimPO', 'Search and pairs per iteration', 'One search tree', 'simple', 'parallel', 'irrelevance', '✓ chosen', '✗ rejected'])
      expect(html).toContain(s);
    expect(html).toContain('itool demo &lt;test&gt;');
    expect(html).toContain('sample s&lt;1&gt;');
    expect(html).toContain('60.0% <span class="n">(6/10)</span>');
    // the overall column of the warm-up: 6 of 20
    expect(html).toContain('<b>30.0%</b> <span class="n">(6/20)</span>');
    expect((html.match(/<svg/g) ?? []).length).toBe(1 + 2 + 1 + 1); // bars, two curves, one histogram, the tree
  });

  it('handles empty data without throwing', () => {
    const html = renderReport({ title: 't', curves: [{ phase: 'x', points: [] }], evaluations: [], iterations: [] });
    expect(html).toContain('no optimizer steps in this phase');
  });

  it('orders the categories as the difficulty buckets (reply, text after a tool result, before multi_turn), unknown ones after', () => {
    const cats = (names: string[]) => ({ label: 'x', series: 'warmup', categories: Object.fromEntries(names.map((n) => [n, { correct: 0, total: 1, accuracy: 0 }])) });
    const shuffled = ['multi_turn', 'zeta', 'reply', 'simple', 'irrelevance', 'parallel_multiple', 'multiple', 'parallel'];
    expect(categoryNames([cats(shuffled.slice(0, 4)), cats(shuffled.slice(4))] as ReportData['evaluations'])).toEqual([...BUCKETS, 'zeta']);
  });

  it('escapes all five HTML specials', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });
});
