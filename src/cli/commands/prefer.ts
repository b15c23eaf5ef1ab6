import type { Command } from 'commander';
import { notYet } from '../util.js';

export function register(program: Command): void {
  notYet(program, 'prefer', 'preference optimisation on pairs alone', 8);
}
