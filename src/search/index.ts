export * from './tree.js';
export * from './pairs.js';
export * from './mcts.js';
export * from './judge.js';
export * from './heuristic.js';
