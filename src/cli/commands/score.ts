import type { Command } from 'commander';
import { notYet } from '../util.js';

export function register(program: Command): void {
  notYet(program, 'score', 'print per-token log-probabilities and perplexity', 7);
}
