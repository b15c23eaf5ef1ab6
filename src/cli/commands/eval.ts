import type { Command } from 'commander';
import { notYet } from '../util.js';

export function register(program: Command): void {
  notYet(program, 'eval', 'score tool-call predictions or a model with the BFCL AST rules', 6);
}
