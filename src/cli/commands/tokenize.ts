import type { Command } from 'commander';
import { notYet } from '../util.js';

export function register(program: Command): void {
  notYet(program, 'tokenize', 'show the tokens and loss mask a model is trained on', 5);
}
