// What the pipeline needs from the layers below, as one object: the real one binds
// src/text, src/train, src/toolcall and src/engine (see real-env.ts); tests pass fakes.
import type { Model } from '../engine/model-types.js';
import type { Sample } from '../data/sample.js';
import type { CategoryTable } from '../report/html.js';
import type { PreferenceOptions, SftOptions } from '../train/options.js';
import type { PreferencePair } from '../train/pairs.js';
import type { PerplexityScope } from '../train/perplexity.js';

export interface PipelineText {
  /** token ids, loss mask (1 on assistant tokens) and prompt length of a training sample */
  render(sample: Sample): { ids: number[]; mask: number[]; promptLength: number };
  /** the prompt that asks for the sample's (last) answer: the messages before it, with the generation prompt */
  prompt(sample: Sample): { text: string; ids: number[] };
  decode(ids: readonly number[]): string;
  /** tokens that end an answer (turn end, end of text) */
  endTokens: readonly number[];
  /**
   * The self-judgement prompt: the policy asked whether `answer` correctly answers the
   * sample, as ids ending where the grade token goes, with the grade tokens' ids and values.
   */
  judgePrompt?(sample: Sample, answer: string): number[];
  judgeGrades?: Array<{ id: number; value: number }>;
  /** the sample's ground-truth answer as text (the answer tokens of render(), decoded; end tokens left out) */
  answerText?(sample: Sample): string;
  /** the A/B/C/D self-grading prompt (search.judge 'grades'): GRADES_TEMPLATE filled and encoded as plain text */
  gradesPrompt?(sample: Sample, answer: string): number[];
  /** token ids of the letters A, B, C, D */
  gradeIds?: { A: number; B: number; C: number; D: number };
}

export interface TrainPoint {
  step: number;
  loss: number;
  tokens: number;
}

export interface PhaseTrainResult {
  steps: number;
  tokens: number;
  /** one point per optimizer step of this phase */
  points: TrainPoint[];
}

export interface PipelineTrainer {
  sft(model: Model, samples: readonly Sample[], opts: Partial<SftOptions>): Promise<PhaseTrainResult>;
  prefer(model: Model, pairs: readonly PreferencePair[], opts: Partial<PreferenceOptions>): Promise<PhaseTrainResult>;
  /** each sample's perplexity (exp of the mean negative log-prob) over the scope's tokens: its answer (default) or every assistant turn */
  perplexity(model: Model, samples: readonly Sample[], opts?: { scope?: PerplexityScope }): Promise<number[]>;
}

export interface PipelineEnv {
  text: PipelineText;
  trainer: PipelineTrainer;
  /** graded reward in [-1, 1] of an answer text against the sample's ground truth */
  reward(answer: string, sample: Sample, partial: boolean): number;
  /** scores answers by category with the BFCL AST rules */
  score(items: ReadonlyArray<{ sample: Sample; answer: string }>): { categories: CategoryTable; valid: boolean[] };
  /** the model in `dir`; `use` 'warmup': the model the warm-up SFT trains (with LoRA, the run may train it whole) */
  loadModel(dir: string, use?: 'warmup'): Promise<Model>;
  saveModel(model: Model, dir: string): Promise<void>;
  /**
   * true when loadModel(dir, 'warmup') gives a model trained whole while the other phases train
   * an adapter (config lora.warmup false): the pipeline then loads the warm-up's model again
   */
  warmupWhole?: boolean;
  /** progress and phase messages (stderr) */
  log?: (line: string) => void;
  /** a progress bar for a phase of `total` units; returns update/stop */
  progress?: (label: string, total: number) => { update(done: number, info?: string): void; stop(): void };
}
