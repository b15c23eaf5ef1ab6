// The search tree of one sample: nodes are steps (fragments of the answer), the root is
// the prompt. Pure data and pure functions (UCT, back-propagation), no model.

export interface SearchNode {
  /** id unique within its tree (root = 0), in creation order */
  id: number;
  parent: SearchNode | null;
  children: SearchNode[];
  /** 0 for the root, 1 for its children, ... */
  depth: number;
  /** this step's token ids (empty for the root) */
  tokens: number[];
  /** this step's decoded text (empty for the root) */
  text: string;
  /** sum of this step's token log-probabilities under the policy (raw model) */
  logprobSum: number;
  /** prior p = exp(mean token log-probability of the step); 1 for the root */
  prior: number;
  /** N: how many back-propagated values passed through this node */
  visits: number;
  /** sum of the back-propagated values */
  valueSum: number;
  /** true when the step ended the answer (an end token was sampled) */
  terminal: boolean;
  /** the reward of this node's own evaluation (rollout from it), when it was evaluated */
  reward?: number;
  /** the rollout text used to evaluate it (kept for the report) */
  rollout?: string;
}

export function makeRoot(): SearchNode {
  return { id: 0, parent: null, children: [], depth: 0, tokens: [], text: '', logprobSum: 0, prior: 1, visits: 0, valueSum: 0, terminal: false };
}

export function addChild(
  parent: SearchNode,
  id: number,
  step: { tokens: number[]; text: string; logprobs: number[]; terminal: boolean },
): SearchNode {
  const logprobSum = step.logprobs.reduce((a, b) => a + b, 0);
  const prior = step.tokens.length > 0 ? Math.exp(logprobSum / step.tokens.length) : 1;
  const child: SearchNode = {
    id,
    parent,
    children: [],
    depth: parent.depth + 1,
    tokens: step.tokens.slice(),
    text: step.text,
    logprobSum,
    prior,
    visits: 0,
    valueSum: 0,
    terminal: step.terminal,
  };
  parent.children.push(child);
  return child;
}

/** mean back-propagated value (0 when never visited) */
export function meanValue(n: SearchNode): number {
  return n.visits > 0 ? n.valueSum / n.visits : 0;
}

/**
 * UCT score of `child` under its parent:
 *   value/(N+1) + c · p · sqrt(ln N_parent / (N+1))
 * with value the child's summed value, N its visits, p its prior. ln of a parent
 * visited 0 or 1 times is 0 (only the value term counts then).
 */
export function uctScore(child: SearchNode, parentVisits: number, c: number): number {
  const n1 = child.visits + 1;
  const explore = parentVisits > 1 ? Math.sqrt(Math.log(parentVisits) / n1) : 0;
  return child.valueSum / n1 + c * child.prior * explore;
}

/** the child with the highest UCT score (the first one on ties) */
export function selectChild(node: SearchNode, c: number): SearchNode {
  if (node.children.length === 0) throw new Error(`selectChild: node ${node.id} has no children`);
  let best = node.children[0];
  let bestScore = uctScore(best, node.visits, c);
  for (let i = 1; i < node.children.length; i++) {
    const s = uctScore(node.children[i], node.visits, c);
    if (s > bestScore) {
      best = node.children[i];
      bestScore = s;
    }
  }
  return best;
}

/**
 * Walks from the root by UCT to the node to expand or re-evaluate: the first node that
 * has no children, is terminal, or sits at maxDepth.
 */
export function selectLeaf(root: SearchNode, c: number, maxDepth: number): SearchNode {
  let node = root;
  while (node.children.length > 0 && !node.terminal && node.depth < maxDepth) node = selectChild(node, c);
  return node;
}

/**
 * The authors' selection (search.selection 'widen'): from the root, descend by UCT only from a
 * node with more than `numActions` children and above `maxDepth`; the node reached is expanded
 * again (it gains numActions more children) unless it has more than numActions children, is
 * terminal, or sits at maxDepth (then the simulation does nothing).
 */
export function selectWiden(root: SearchNode, c: number, maxDepth: number, numActions: number): SearchNode {
  let node = root;
  while (node.children.length > numActions && node.depth < maxDepth) node = selectChild(node, c);
  return node;
}

/** adds `value` to the node and every ancestor up to the root, one visit each */
export function backpropagate(node: SearchNode, value: number): void {
  for (let n: SearchNode | null = node; n; n = n.parent) {
    n.visits += 1;
    n.valueSum += value;
  }
}

/** the nodes from the root's first child down to `node` (the root excluded) */
export function pathTo(node: SearchNode): SearchNode[] {
  const path: SearchNode[] = [];
  for (let n: SearchNode | null = node; n && n.parent; n = n.parent) path.push(n);
  return path.reverse();
}

export function allNodes(root: SearchNode): SearchNode[] {
  const out: SearchNode[] = [];
  const stack = [root];
  while (stack.length) {
    const n = stack.pop()!;
    out.push(n);
    for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]);
  }
  return out.sort((a, b) => a.id - b.id);
}

/** JSON-safe copy of a tree (no parent links) for run directories and the report */
export interface TreeJson {
  id: number;
  depth: number;
  text: string;
  tokens: number;
  prior: number;
  visits: number;
  value: number;
  terminal: boolean;
  reward?: number;
  children: TreeJson[];
}

export function treeToJson(n: SearchNode): TreeJson {
  const out: TreeJson = {
    id: n.id,
    depth: n.depth,
    text: n.text,
    tokens: n.tokens.length,
    prior: n.prior,
    visits: n.visits,
    value: meanValue(n),
    terminal: n.terminal,
    children: n.children.map(treeToJson),
  };
  if (n.reward !== undefined) out.reward = n.reward;
  return out;
}
