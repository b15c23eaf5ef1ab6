import type { Command } from 'commander';
import { notYet } from '../util.js';

export function register(program: Command): void {
  notYet(program, 'ablate', "run the paper's ablations on the same budget", 9);
}
