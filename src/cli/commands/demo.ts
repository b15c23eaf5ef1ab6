import type { Command } from 'commander';
import { notYet } from '../util.js';

export function register(program: Command): void {
  notYet(program, 'demo', 'run the whole iTool method on a built-in model trained from scratch', 9);
}
