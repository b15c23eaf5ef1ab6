import type { Command } from 'commander';
import { notYet } from '../util.js';

export function register(program: Command): void {
  notYet(program, 'data', 'make and convert tool-use data sets', 6);
}
