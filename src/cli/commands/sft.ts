import type { Command } from 'commander';
import { notYet } from '../util.js';

export function register(program: Command): void {
  notYet(program, 'sft', 'supervised fine-tuning alone', 8);
}
