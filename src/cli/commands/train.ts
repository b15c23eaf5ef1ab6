import type { Command } from 'commander';
import { notYet } from '../util.js';

export function register(program: Command): void {
  notYet(program, 'train', 'run the iTool loop on a model directory and tool-use data', 9);
}
