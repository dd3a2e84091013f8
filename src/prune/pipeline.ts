/**
 * The pruning walk (ALGORITHMS.md, "The sequential pipeline" and "OWL"):
 *
 * 1. LOD pass (OWL allocations and DLP only): calibration windows flow through the DENSE model
 *    block by block; for each block the Wanda scores of its 7 linears are one population, and
 *    D_l = 100 * count(A > M * mean(A)) / numel.
 * 2. Allocation: per-block sparsities from D (allocation.ts, pure functions).
 * 3. Sequential pass: block l's activation statistics come from running the still-dense block l
 *    on the outputs of the already-pruned blocks 0..l-1; its 7 linears are pruned, then its
 *    outputs are recomputed with the pruned weights and feed block l+1. Magnitude pruning needs
 *    no statistics, so it skips the propagation. SparseGPT gathers one Hessian per linear input
 *    (q/k/v share one, gate/up another) in the same forward pass, factors each once, and prunes
 *    and updates the linears that read it (src/ops/sparsegpt.ts).
 *
 * Memory: only the current block's weights, its statistics, and the calibration activations
 * (one buffer per window, inputs and outputs; with `offloadActivations`, up to 8 windows awaiting
 * their readback) live on the GPU.
 * @module
 */
import { ArgumentError, ModelFormatError, type OwlError, UnsupportedError } from "../errors.ts";
import type { Gpu } from "../gpu/device.ts";
import { InFlight } from "../gpu/inflight.ts";
import { readMatrix } from "../gpu/matrix.ts";
import { type LinearName, LINEARS, linearShape } from "../model/config.ts";
import {
  ForwardRunner,
  GpuModel,
  GROUP_LINEARS,
  type LinearInputGroup,
  type LinearInputObserver,
} from "../model/forward.ts";
import { linearWeight } from "../model/names.ts";
import type { WeightSource } from "../model/weights.ts";
import { type ActivationOptions, CalibrationActivations } from "./activations.ts";
import { MemoryWeightStore, type PrunedWeightStore, readBlockLinears } from "./store.ts";
import {
  checkCheckpoint,
  CHECKPOINT_VERSION,
  type IdentitySettings,
  type PruneCheckpoint,
  pruneIdentity,
} from "./resume.ts";
import {
  applyMask,
  magnitudeMask,
  nmMask,
  outlierCount,
  readMask,
  releaseMask,
  updateScalerRow,
  wandaRowMask,
} from "../ops/prune_ops.ts";
import {
  checkSparseGPTOptions,
  DEFAULT_BLOCKSIZE,
  DEFAULT_PERCDAMP,
  factorHessian,
  type Hessian,
  type InverseFactor,
  newHessian,
  releaseHessian,
  releaseInverseFactor,
  sparsegptPrune,
  updateHessian,
} from "../ops/sparsegpt.ts";
import {
  depthAllocation,
  dlpAllocation,
  outlierRatio,
  owlAllocation,
  owlMixedNM,
  pruneCount,
  uniformAllocation,
} from "./allocation.ts";

/**
 * The pruning methods {@linkcode prune} accepts (`dense` prunes nothing).
 *
 * @example The OWL methods are the ones whose default allocation is OWL's
 * ```ts
 * import { defaultAllocation, METHODS } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(METHODS.length, 7);
 * const owl = METHODS.filter((m) => defaultAllocation(m) === "owl");
 * assert.deepEqual(owl, ["owl-magnitude", "owl-wanda", "owl-sparsegpt"]);
 * assert(owl.every((m) => (METHODS as readonly string[]).includes(m.slice(4)))); // each has a plain twin
 * ```
 */
export const METHODS = [
  "dense",
  "magnitude",
  "wanda",
  "owl-magnitude",
  "owl-wanda",
  "sparsegpt",
  "owl-sparsegpt",
] as const;
/**
 * One of {@linkcode METHODS}.
 *
 * @example Methods with their default allocations, as `prune` applies them
 * ```ts
 * import { defaultAllocation, type Method } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const methods: Method[] = ["wanda", "owl-wanda", "sparsegpt"];
 * assert.deepEqual(methods.map(defaultAllocation), ["uniform", "owl", "uniform"]);
 * ```
 */
export type Method = typeof METHODS[number];
/**
 * The rules that turn a target sparsity into per-block sparsities (see allocation.ts).
 *
 * @example An OWL method accepts only the OWL allocation
 * ```ts
 * import { ALLOCATIONS, type PruneOptions, validatePruneOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(ALLOCATIONS, ["uniform", "owl", "depth", "dlp"]);
 * const base: PruneOptions = {
 *   method: "owl-wanda", sparsity: 0.5, pattern: { kind: "unstructured" }, owlM: 5, owlLambda: 0.08,
 *   calibration: [[1, 2, 3, 4]],
 * };
 * const accepted = ALLOCATIONS.filter((allocation) => {
 *   try {
 *     validatePruneOptions({ ...base, allocation });
 *     return true;
 *   } catch {
 *     return false;
 *   }
 * });
 * assert.deepEqual(accepted, ["owl"]);
 * ```
 */
export const ALLOCATIONS = ["uniform", "owl", "depth", "dlp"] as const;
/**
 * One of {@linkcode ALLOCATIONS}.
 *
 * @example A depth schedule goes with a plain method, not with an OWL one
 * ```ts
 * import { type Allocation, ArgumentError, type PruneOptions, validatePruneOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const allocation: Allocation = "depth";
 * const opts: PruneOptions = {
 *   method: "wanda", allocation, beta: 0.02, sparsity: 0.5, pattern: { kind: "unstructured" },
 *   owlM: 5, owlLambda: 0.08, calibration: [[1, 2, 3, 4]],
 * };
 * validatePruneOptions(opts);
 * assert.throws(
 *   () => validatePruneOptions({ ...opts, method: "owl-wanda" }),
 *   (e) => e instanceof ArgumentError && /--method wanda --allocation depth/.test(e.message),
 * );
 * ```
 */
export type Allocation = typeof ALLOCATIONS[number];

/**
 * Unstructured, or N pruned in every M consecutive input columns.
 *
 * @example 2:4 prunes 2 of every 4 weights; M must be at least N
 * ```ts
 * import { ArgumentError, parsePattern, type Pattern, patternName, type PruneOptions, validatePruneOptions }
 *   from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const pattern: Pattern = { kind: "nm", n: 2, m: 4 };
 * assert.equal(patternName(pattern), "2:4");
 * assert.deepEqual(parsePattern("2:4"), pattern);
 * const opts: PruneOptions = {
 *   method: "wanda", sparsity: 0.5, pattern, owlM: 5, owlLambda: 0.08, calibration: [[1, 2, 3, 4]],
 * };
 * validatePruneOptions(opts);
 * assert.throws(() => validatePruneOptions({ ...opts, pattern: { kind: "nm", n: 4, m: 2 } }), ArgumentError);
 * ```
 */
export type Pattern = { kind: "unstructured" } | { kind: "nm"; n: number; m: number };

/**
 * Options of {@linkcode prune}.
 *
 * @example OWL-Wanda at 70% with the reference's M = 5 and lambda = 0.08, on 4 calibration windows
 * ```ts
 * import {
 *   ArgumentError, calibrationWindows, type PruneOptions, validatePruneOptions,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const tokens = Int32Array.from({ length: 100 }, (_, i) => i % 32);
 * const opts: PruneOptions = {
 *   method: "owl-wanda", sparsity: 0.7, pattern: { kind: "unstructured" }, owlM: 5, owlLambda: 0.08,
 *   calibration: calibrationWindows(tokens, 4, 16),
 *   onProgress: (phase, done, total) => console.log(`${phase} ${done}/${total}`),
 * };
 * validatePruneOptions(opts); // what prune checks before it touches the model
 * assert.equal(opts.calibration.length, 4);
 * assert.throws(() => validatePruneOptions({ ...opts, sparsity: 1 }), ArgumentError);
 * ```
 */
export interface PruneOptions {
  /** The pruning method. */
  method: Method;
  /** Default: "owl" for owl-* methods, "uniform" otherwise. */
  allocation?: Allocation;
  /** Target sparsity: the fraction of the block linears' weights to prune. */
  sparsity: number;
  /** Sparsity pattern. */
  pattern: Pattern;
  /** OWL's outlier threshold: a score is an outlier when it exceeds M times its block's mean score. */
  owlM: number;
  /** OWL's lambda: block sparsities spread over a range of width 2 * lambda around the target. */
  owlLambda: number;
  /** Depth schedule step (allocation "depth"). */
  beta?: number;
  /** DLP range (allocation "dlp"). */
  alpha?: number;
  /** Mixed N:M rounding (OWL with an N:M pattern). */
  nmRounding?: "reference" | "mass-preserving";
  /** SparseGPT damping, a fraction of the mean Hessian diagonal (default 0.01). */
  percdamp?: number;
  /** SparseGPT columns per block (lazy batch update), 1..256 (default 128). */
  blocksize?: number;
  /** Calibration windows, each seqlen tokens. */
  calibration: ArrayLike<number>[];
  /** Called as work completes, with the phase's name, the steps done and the total. */
  onProgress?: (phase: string, done: number, total: number) => void;
  /**
   * How the walk keeps the calibration activations between blocks on the GPU (default "f32"). "f16"
   * halves their memory (LLaMA-2-7B at 128 x 4096 tokens: 8.6 GB instead of 17.2) and rounds each
   * block's inputs to f16, as the reference implementations do when they run the model in fp16; the
   * blocks still compute in f32. Needs an even dim; activations past f16's range are refused.
   */
  activationDtype?: "f32" | "f16";
  /**
   * Keep the calibration activations in host memory instead of on the GPU (default false): each
   * window is written to the GPU before its block runs, and the outputs are read back 8 windows at a
   * time, so the walk's GPU memory no longer grows with nsamples x seqlen. The same bits either way,
   * so the same result; slower by a write per window and a readback per 8 windows, each block pass.
   */
  offloadActivations?: boolean;
  /**
   * Where each pruned linear goes as soon as its block is done (default: a new
   * {@linkcode MemoryWeightStore}). A {@linkcode FileWeightStore} keeps host memory to one linear.
   */
  store?: PrunedWeightStore;
  /**
   * Called after the outlier pass and after every block, once that block's linears are all in the
   * store, with what {@linkcode prune} needs to resume from there (JSON-serialisable). Awaited; an
   * error it throws stops the walk.
   */
  onCheckpoint?: (checkpoint: PruneCheckpoint) => void | Promise<void>;
  /**
   * Resume from a checkpoint that `onCheckpoint` was given, by a job with the same options, model and
   * calibration (ArgumentError otherwise). `store` must hold exactly the linears of its finished
   * blocks. The finished blocks are not pruned again: the calibration windows run through their
   * pruned weights to rebuild the next block's inputs, so the result is the uninterrupted run's, to
   * the bit on the same adapter.
   */
  resume?: PruneCheckpoint;
  /** How refusals of `resume` name it (default "the checkpoint"; the CLI: "--checkpoint DIR"). */
  resumeName?: string;
}

/**
 * What the pruner decided for one decoder block.
 *
 * @example Blocks of a uniform allocation have no outlier ratio: the report shows "-"
 * ```ts
 * import { type BlockReport, type PruneReport, reportMarkdown, reportSvg } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const blocks: BlockReport[] = [0, 1].map((index) => ({ index, outlier_ratio: null, sparsity: 0.5 }));
 * const report: PruneReport = {
 *   model: "tiny", method: "wanda", allocation: "uniform", pattern: "unstructured", sparsity_target: 0.5,
 *   sparsity_realised: 0.5, ppl_dense: 10, ppl: 12, kl: 0.1, seconds: 1, adapter: "llvmpipe",
 *   blocks, linears: [], settings: {},
 * };
 * assert(reportMarkdown(report).includes("| 1 | - | 0.500000 |"));
 * assert(!reportSvg(report).includes("<circle")); // no outlier-ratio line
 * ```
 */
export interface BlockReport {
  /** Block index. */
  index: number;
  /** D_l in percent (OWL/DLP allocations), else null. */
  outlier_ratio: number | null;
  /** Target sparsity of the block (for N:M: pruned fraction n_l / m). */
  sparsity: number;
}

/**
 * The result of {@linkcode prune}: the pruned weights and what was decided per block and per linear.
 *
 * @example Wanda at 50% on a tiny random model: the counts and the realised sparsity match the weights
 * ```ts
 * import { Gpu, MemoryByteSource, openLlama2c, prune, type PruneResult } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * // A tiny random llama2.c checkpoint: dim 8, hidden 12, 2 layers, 2 heads, vocab 16, context 8.
 * const [D, H, L, V, S] = [8, 12, 2, 16, 8];
 * const n = V * D + L * (2 * D + 4 * D * D + 3 * H * D) + D + S * (D / 2); // f32 values after the header
 * const bytes = new Uint8Array(28 + 4 * n);
 * new Int32Array(bytes.buffer, 0, 7).set([D, H, L, 2, 2, V, S]);
 * new Float32Array(bytes.buffer, 28).set(Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1)));
 * const source = await openLlama2c(new MemoryByteSource(bytes));
 *
 * const gpu = await Gpu.create();
 * const result: PruneResult = await prune(gpu, source, {
 *   method: "wanda", sparsity: 0.5, pattern: { kind: "unstructured" }, owlM: 5, owlLambda: 0.08,
 *   calibration: [[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15, 0]],
 * });
 * gpu.destroy();
 * assert.deepEqual(result.blocks.map((b) => b.sparsity), [0.5, 0.5]);
 * assert.equal(result.counts.length, 2 * 7); // every linear of every block
 * let zeros = 0, total = 0;
 * for (const c of result.counts) {
 *   const w = await result.weights.read(c.name);
 *   assert.equal(w.filter((x) => x === 0).length, c.pruned);
 *   assert.equal(c.pruned, c.expected);
 *   [zeros, total] = [zeros + c.pruned, total + w.length];
 * }
 * assert.equal(result.realisedSparsity, zeros / total);
 * ```
 */
export interface PruneResult {
  /** Per block, in order. */
  blocks: BlockReport[];
  /** Pruned weights by canonical tensor name, f32 [C_out, C_in]: `opts.store`, or a new in-memory store. */
  weights: PrunedWeightStore;
  /** Zeros / total over all pruned linears. */
  realisedSparsity: number;
  /** Per linear: pruned count, and the count the floor rule asks for. */
  counts: { name: string; pruned: number; expected: number; numel: number }[];
  /** Mean N of a mixed N:M allocation (when used). */
  meanN?: number;
  /** SparseGPT: every Hessian whose factorisation needed more damping than asked for. */
  dampingRetries?: DampingRetry[];
  /** Resumed from a checkpoint: the blocks it had finished, which this call did not prune. */
  resumedAfterBlock?: number;
}

/**
 * One Hessian that was not positive definite at the requested damping (SparseGPT).
 *
 * @example A retry as a SparseGPT run's report.json lists it
 * ```ts
 * import { type DampingRetry, type PruneReport, reportJson } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const requested = 0.01;
 * const retry: DampingRetry = { block: 3, input: "gateup", retries: 2, percdamp: 1 };
 * assert.equal(requested * 10 ** retry.retries, retry.percdamp);
 * const report: PruneReport = {
 *   model: "tiny", method: "sparsegpt", allocation: "uniform", pattern: "unstructured", sparsity_target: 0.5,
 *   sparsity_realised: 0.5, ppl_dense: 10, ppl: 11, kl: 0.05, seconds: 1, adapter: "llvmpipe",
 *   blocks: [], linears: [], settings: { percdamp: requested, damping_retries: [retry] },
 * };
 * assert.deepEqual(JSON.parse(reportJson(report)).settings.damping_retries, [retry]);
 * ```
 */
export interface DampingRetry {
  /** Decoder block index. */
  block: number;
  /** Which linears read it: "qkv", "o", "gateup" or "down". */
  input: LinearInputGroup;
  /** How many times percdamp was multiplied by 10. */
  retries: number;
  /** The percdamp that worked. */
  percdamp: number;
}

/** SparseGPT and OWL + SparseGPT. */
export function isSparseGPT(method: Method): boolean {
  return method === "sparsegpt" || method === "owl-sparsegpt";
}

/**
 * The allocation rule a method uses when none is given.
 *
 * @example "owl" for the owl-* methods, "uniform" for the rest
 * ```ts
 * import { defaultAllocation, METHODS } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(METHODS.map(defaultAllocation), [
 *   "uniform", "uniform", "uniform", "owl", "owl", "uniform", "owl",
 * ]); // dense, magnitude, wanda, owl-magnitude, owl-wanda, sparsegpt, owl-sparsegpt
 * ```
 */
export function defaultAllocation(method: Method): Allocation {
  return method.startsWith("owl-") ? "owl" : "uniform";
}

/**
 * Validate options that do not depend on the model (throws ArgumentError).
 *
 * @example Catch bad options before loading a model
 * ```ts
 * import { ArgumentError, type PruneOptions, validatePruneOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const ok: PruneOptions = {
 *   method: "sparsegpt", sparsity: 0.5, pattern: { kind: "unstructured" }, owlM: 5, owlLambda: 0.08,
 *   calibration: [[1, 2, 3, 4]],
 * };
 * validatePruneOptions(ok);
 * assert.throws(() => validatePruneOptions({ ...ok, sparsity: -0.1 }), ArgumentError);
 * assert.throws(() => validatePruneOptions({ ...ok, calibration: [] }), ArgumentError); // no samples
 * assert.throws(() => validatePruneOptions({ ...ok, percdamp: -1 }), ArgumentError);
 * ```
 */
export function validatePruneOptions(o: PruneOptions): void {
  if (!(METHODS as readonly string[]).includes(o.method)) {
    throw new ArgumentError(`method must be one of ${METHODS.join(", ")}, got ${JSON.stringify(o.method)}`);
  }
  if (o.allocation !== undefined && !(ALLOCATIONS as readonly string[]).includes(o.allocation)) {
    throw new ArgumentError(
      `allocation must be one of ${ALLOCATIONS.join(", ")}, got ${JSON.stringify(o.allocation)}`,
    );
  }
  const kind: string | undefined = (o.pattern as { kind?: string } | undefined)?.kind;
  if (kind !== "unstructured" && kind !== "nm") {
    throw new ArgumentError(
      `pattern.kind must be "unstructured" or "nm", got ${JSON.stringify(kind)}`,
    );
  }
  if (!(o.sparsity >= 0 && o.sparsity < 1)) {
    throw new ArgumentError(`--sparsity must be in [0, 1), got ${o.sparsity}`);
  }
  if (o.calibration.length === 0) throw new ArgumentError("--nsamples must be at least 1");
  if (o.pattern.kind === "nm") {
    const { n, m } = o.pattern;
    if (!(Number.isInteger(n) && Number.isInteger(m) && m >= 1 && n >= 0 && n <= m)) {
      throw new ArgumentError(`bad N:M pattern ${n}:${m}: need integers 0 <= N <= M, M >= 1`);
    }
    if (n === m) {
      throw new ArgumentError(`N:M pattern ${n}:${m} prunes every weight (sparsity 1); use N < M`);
    }
  }
  if (isSparseGPT(o.method)) {
    const pd = o.percdamp ?? DEFAULT_PERCDAMP;
    if (!(Number.isFinite(pd) && pd >= 0)) {
      throw new ArgumentError(`--percdamp must be a number >= 0, got ${pd}`);
    }
    // Shape-independent checks: the blocksize range, and N:M against the blocksize.
    const nm = o.pattern.kind === "nm" ? { n: o.pattern.n, m: o.pattern.m } : undefined;
    checkSparseGPTOptions(null, 1, nm ? nm.m : 1, { sparsity: o.sparsity, blocksize: o.blocksize, nm });
  }
  const alloc = o.allocation ?? defaultAllocation(o.method);
  if (alloc === "owl" && o.method !== "dense") {
    if (!(Number.isFinite(o.owlM) && o.owlM > 0)) {
      throw new ArgumentError(
        `owlM (the outlier threshold factor) must be a finite number > 0, got ${o.owlM}`,
      );
    }
    if (!(Number.isFinite(o.owlLambda) && o.owlLambda >= 0)) {
      throw new ArgumentError(`owlLambda must be a finite number >= 0, got ${o.owlLambda}`);
    }
  }
  if (o.nmRounding !== undefined && o.nmRounding !== "reference" && o.nmRounding !== "mass-preserving") {
    throw new ArgumentError(
      `nmRounding must be "reference" or "mass-preserving", got ${JSON.stringify(o.nmRounding)}`,
    );
  }
  if (o.offloadActivations !== undefined && typeof o.offloadActivations !== "boolean") {
    throw new ArgumentError(
      `offloadActivations must be a boolean, got ${JSON.stringify(o.offloadActivations)}`,
    );
  }
  if (o.activationDtype !== undefined && o.activationDtype !== "f32" && o.activationDtype !== "f16") {
    throw new ArgumentError(
      `activationDtype must be "f32" or "f16", got ${JSON.stringify(o.activationDtype)}`,
    );
  }
  if (o.method.startsWith("owl-") && alloc !== "owl") {
    throw new ArgumentError(
      `method ${o.method} uses the OWL allocation; use --method ${o.method.slice(4)} --allocation ${alloc}`,
    );
  }
}

type Stats = Record<LinearInputGroup, GPUBuffer>;

function groupOf(lin: LinearName): LinearInputGroup {
  for (const g of Object.keys(GROUP_LINEARS) as LinearInputGroup[]) {
    if (GROUP_LINEARS[g].includes(lin)) return g;
  }
  throw new Error(`no input group for ${lin}`);
}

/** A pruned weight that is NaN or infinite: never returned, so never saved. */
function nonFinite(name: string, i: number, cols: number, v: number): UnsupportedError {
  return new UnsupportedError(
    `pruned weight ${name}[${Math.floor(i / cols)}][${i % cols}] is ${v}: the pruner produced a non-finite ` +
      "value, so nothing is saved. For SparseGPT raise --percdamp or use more calibration samples (--nsamples)",
  );
}

/**
 * The options that change a walk's result, with their defaults resolved: what the walk uses, and what
 * a checkpoint names its job by.
 */
function resultSettings(o: PruneOptions, allocation: Allocation): IdentitySettings {
  return {
    method: o.method,
    allocation,
    sparsity: o.sparsity,
    pattern: o.pattern.kind === "nm" ? `${o.pattern.n}:${o.pattern.m}` : "unstructured",
    owlM: o.owlM,
    owlLambda: o.owlLambda,
    beta: o.beta ?? 0.02,
    alpha: o.alpha ?? 0.15,
    nmRounding: o.nmRounding ?? "reference",
    percdamp: o.percdamp ?? DEFAULT_PERCDAMP,
    blocksize: o.blocksize ?? DEFAULT_BLOCKSIZE,
    activationDtype: o.activationDtype ?? "f32",
  };
}

/** A resumed walk's store must hold the linears of the finished blocks, and nothing else. */
function checkResumeStore(store: PrunedWeightStore, cp: PruneCheckpoint, name: string): void {
  const want = new Set<string>();
  for (let l = 0; l < cp.blocksDone; l++) for (const lin of LINEARS) want.add(linearWeight(l, lin));
  const missing = [...want].filter((n) => !store.has(n));
  const extra = store.names().filter((n) => !want.has(n));
  const some = (names: string[]) => names[0] + (names.length > 1 ? ` and ${names.length - 1} more` : "");
  const wrong = [
    ...(missing.length ? [`lacks ${some(missing)}`] : []),
    ...(extra.length ? [`holds ${some(extra)}`] : []),
  ];
  if (wrong.length) {
    throw new ArgumentError(
      `${name} cannot be resumed after block ${cp.blocksDone}: the store ${wrong.join(" and ")}, ` +
        "unlike its finished blocks",
    );
  }
}

/** Runs the walk over a model; one instance per prune. */
class Walker {
  readonly runner: ForwardRunner;
  /** The windows' activations, from the first `embedAll` (magnitude pruning needs none). */
  private acts: CalibrationActivations | undefined;

  constructor(
    readonly gpu: Gpu,
    readonly model: GpuModel,
    readonly windows: ArrayLike<number>[],
    readonly activations: ActivationOptions = {},
  ) {
    this.runner = new ForwardRunner(model, windows[0].length);
  }

  get seqlen(): number {
    return this.windows[0].length;
  }

  /** Every window's input = its embeddings. */
  async embedAll(): Promise<void> {
    const { gpu, runner } = this;
    this.acts ??= new CalibrationActivations(
      gpu,
      this.windows.length,
      this.seqlen * this.model.config.dim,
      this.activations,
    );
    for (let w = 0; w < this.windows.length; w++) {
      runner.embed(this.windows[w]);
      await this.acts.keep(w, "in", runner.x);
    }
    await this.acts.flush();
  }

  /**
   * Every window's output = block l of its input, accumulating statistics when given: Wanda's
   * `stats`, or `observe` (SparseGPT's Hessians), which takes precedence.
   */
  async runBlock(
    l: number,
    stats: Stats | null,
    phase: string,
    observe?: LinearInputObserver,
  ): Promise<void> {
    const { gpu, runner } = this;
    const acts = this.acts!;
    const T = this.seqlen;
    const queued = new InFlight(1);
    for (let w = 0; w < this.windows.length; w++) {
      acts.restoreInput(w, runner.x);
      runner.block(
        l,
        T,
        0,
        observe ?? (stats ? (g, x, t, cIn) => updateScalerRow(gpu, x, stats[g], t, cIn, w, 1) : undefined),
      );
      await acts.keep(w, "out", runner.x);
      // Keep the queue 8-16 windows long: wait for the windows before the last 8, never for all.
      if (w % 8 === 7) await queued.add(gpu.done());
    }
    await acts.flush();
    await queued.drain();
    await gpu.sync();
    void phase;
  }

  swap(): void {
    this.acts!.swap();
  }

  /** Statistics and sqrt scalers handed out, until `releaseStats` (or `release`, on errors). */
  private liveStats = new Set<Stats>();

  newStats(): Stats {
    const c = this.model.config;
    const cIn = (g: LinearInputGroup) => linearShape(c, GROUP_LINEARS[g][0])[1];
    const mk = (g: LinearInputGroup) => this.gpu.buffer(cIn(g) * 4, `scaler-${g}`);
    const stats = { qkv: mk("qkv"), o: mk("o"), gateup: mk("gateup"), down: mk("down") };
    this.liveStats.add(stats);
    return stats;
  }

  /** sqrt(r) per group, computed on the host in float64 and rounded to f32 (see kernels). */
  async sqrtScalers(stats: Stats, l: number): Promise<Record<LinearInputGroup, GPUBuffer>> {
    const out = {} as Record<LinearInputGroup, GPUBuffer>;
    this.liveStats.add(out); // filled as it goes, so an error below frees what was uploaded
    for (const g of Object.keys(stats) as LinearInputGroup[]) {
      const r = await this.gpu.readF32(stats[g]);
      if (!r.every(Number.isFinite)) throw this.nonFiniteActivations(l, g);
      out[g] = this.gpu.upload(Float32Array.from(r, (v) => Math.sqrt(v)), `sqrt-${g}`);
    }
    return out;
  }

  /** Activations that overflowed: f16 storage past its range, or a model whose outputs overflow f32. */
  private nonFiniteActivations(l: number, g: LinearInputGroup): OwlError {
    return this.activations.dtype === "f16"
      ? new UnsupportedError(
        `block ${l}'s ${g} inputs overflowed f16 (|x| > 65504) in the calibration activations; ` +
          `keep them in f32 (--calib-dtype f32)`,
      )
      : new ModelFormatError(
        `block ${l}'s ${g} inputs are not finite on the calibration data: the model's activations ` +
          `overflow (is the checkpoint corrupt?)`,
      );
  }

  releaseStats(s: Record<LinearInputGroup, GPUBuffer>): void {
    this.liveStats.delete(s);
    this.gpu.release(...Object.values(s));
  }

  /** SparseGPT: block l's Hessians (one per linear input) from one calibration pass. */
  async hessians(l: number): Promise<Record<LinearInputGroup, Hessian>> {
    const c = this.model.config;
    const hs = {} as Record<LinearInputGroup, Hessian>;
    try {
      for (const g of Object.keys(GROUP_LINEARS) as LinearInputGroup[]) {
        hs[g] = newHessian(this.gpu, linearShape(c, GROUP_LINEARS[g][0])[1]);
      }
      await this.runBlock(l, null, "calibrate", (g, x, t) => updateHessian(this.gpu, hs[g], x, t));
      return hs;
    } catch (e) {
      for (const h of Object.values(hs)) releaseHessian(this.gpu, h);
      throw e;
    }
  }

  /** Factors handed out by `factors`, until `releaseFactors` (or `release`, on errors). */
  private liveFactors: InverseFactor[] = [];

  /** SparseGPT: the damped inverse factor of each Hessian (the Hessians are released). */
  async factors(
    l: number,
    hs: Record<LinearInputGroup, Hessian>,
    percdamp: number | undefined,
    retries: DampingRetry[],
  ): Promise<Record<LinearInputGroup, InverseFactor>> {
    const fs = {} as Record<LinearInputGroup, InverseFactor>;
    const groups = Object.keys(hs) as LinearInputGroup[];
    try {
      for (const g of groups) {
        const f = fs[g] = await factorHessian(this.gpu, hs[g], {
          percdamp,
          label: `block ${l}'s ${g} input`,
        });
        this.liveFactors.push(f);
        releaseHessian(this.gpu, hs[g]);
        if (f.retries > 0) retries.push({ block: l, input: g, retries: f.retries, percdamp: f.percdamp });
      }
      return fs;
    } catch (e) {
      for (const g of groups) releaseHessian(this.gpu, hs[g]);
      this.releaseFactors();
      if (this.activations.dtype === "f16" && e instanceof UnsupportedError && /non-finite/.test(e.message)) {
        throw new UnsupportedError(
          `${e.message}; the calibration activations are kept in f16: keep them in f32 (--calib-dtype f32)`,
          { cause: e },
        );
      }
      throw e;
    }
  }

  releaseFactors(): void {
    for (const f of this.liveFactors) releaseInverseFactor(this.gpu, f);
    this.liveFactors = [];
  }

  release(): void {
    for (const s of [...this.liveStats]) this.releaseStats(s);
    this.releaseFactors();
    this.runner.release();
    this.acts?.release();
  }
}

/**
 * Prune every block of `source` as `opts` says; returns pruned weights and the report.
 *
 * @example Magnitude pruning at 50% zeroes the smallest |w| of each linear of a tiny random model
 * ```ts
 * import { Gpu, linearWeight, MemoryByteSource, openLlama2c, prune } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * // A tiny random llama2.c checkpoint: dim 8, hidden 12, 2 layers, 2 heads, vocab 16, context 8.
 * const [D, H, L, V, S] = [8, 12, 2, 16, 8];
 * const n = V * D + L * (2 * D + 4 * D * D + 3 * H * D) + D + S * (D / 2); // f32 values after the header
 * const bytes = new Uint8Array(28 + 4 * n);
 * new Int32Array(bytes.buffer, 0, 7).set([D, H, L, 2, 2, V, S]);
 * new Float32Array(bytes.buffer, 28).set(Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1)));
 * const source = await openLlama2c(new MemoryByteSource(bytes));
 *
 * const gpu = await Gpu.create();
 * const result = await prune(gpu, source, {
 *   method: "magnitude", sparsity: 0.5, pattern: { kind: "unstructured" }, owlM: 5, owlLambda: 0.08,
 *   calibration: [[1, 2, 3, 4, 5, 6, 7, 8]],
 * });
 * gpu.destroy();
 * const name = linearWeight(1, "q");
 * const dense = await source.readF32(name), pruned = await result.weights.read(name);
 * const cut = dense.filter((_, i) => pruned[i] === 0), kept = dense.filter((_, i) => pruned[i] !== 0);
 * assert.equal(cut.length, (D * D) / 2);
 * assert(Math.max(...cut.map(Math.abs)) <= Math.min(...kept.map(Math.abs)));
 * assert(pruned.every((w, i) => w === 0 || w === dense[i])); // kept weights are unchanged
 * assert.equal(result.realisedSparsity, 0.5);
 * ```
 */
export async function prune(gpu: Gpu, source: WeightSource, opts: PruneOptions): Promise<PruneResult> {
  validatePruneOptions(opts);
  const c = source.config;
  const L = c.nLayers;
  const alloc = opts.allocation ?? defaultAllocation(opts.method);
  const isWanda = opts.method === "wanda" || opts.method === "owl-wanda";
  const sgpt = isSparseGPT(opts.method);
  if (opts.pattern.kind === "nm") {
    for (const lin of LINEARS) {
      const cIn = linearShape(c, lin)[1];
      if (cIn % opts.pattern.m !== 0) {
        throw new ArgumentError(
          `N:M pattern ${opts.pattern.n}:${opts.pattern.m} does not divide C_in = ${cIn} of ${lin}`,
        );
      }
    }
  }
  if (sgpt) {
    // Shape checks (N:M fit, llvmpipe's loop limit) before any work.
    const nm = opts.pattern.kind === "nm" ? { n: opts.pattern.n, m: opts.pattern.m } : undefined;
    for (const lin of LINEARS) {
      const [rows, cols] = linearShape(c, lin);
      checkSparseGPTOptions(gpu, rows, cols, { sparsity: opts.sparsity, blocksize: opts.blocksize, nm });
    }
  }
  const T = opts.calibration[0].length;
  if (T < 2 || T > c.maxSeqLen) {
    throw new ArgumentError(
      `calibration windows of ${T} tokens: need 2 to ${c.maxSeqLen} (the model's context)`,
    );
  }
  for (const w of opts.calibration) {
    if (w.length !== T) {
      throw new ArgumentError(`calibration windows must all have ${T} tokens; one has ${w.length}`);
    }
    for (let i = 0; i < w.length; i++) {
      if (!(Number.isInteger(w[i]) && w[i] >= 0 && w[i] < c.vocabSize)) {
        throw new ArgumentError(
          `calibration token id ${w[i]} is not an integer id in the model's vocabulary of ${c.vocabSize}`,
        );
      }
    }
  }
  if (opts.activationDtype === "f16" && (T * c.dim) % 2 !== 0) {
    throw new UnsupportedError(
      `f16 calibration activations need an even count per window (${T} x dim ${c.dim})`,
    );
  }
  const settings = resultSettings(opts, alloc);
  const checkpointing = opts.onCheckpoint !== undefined || opts.resume !== undefined;
  const job = checkpointing ? await pruneIdentity(source, settings, opts.calibration) : {};
  const resume = opts.resume
    ? checkCheckpoint(opts.resume, job, L, opts.resumeName ?? "the checkpoint")
    : undefined;
  const weights = opts.store ?? new MemoryWeightStore();
  if (resume) checkResumeStore(weights, resume, opts.resumeName ?? "the checkpoint");
  const model = await GpuModel.load(gpu, source, { lazyBlocks: true, dtype: "f32" });
  const walker = new Walker(gpu, model, opts.calibration, {
    dtype: opts.activationDtype,
    offload: opts.offloadActivations,
  });
  const progress = opts.onProgress ?? (() => {});
  try {
    // 1. LOD pass on the dense model (a resumed job has its result).
    const needLod = alloc === "owl" || alloc === "dlp";
    const D: number[] = resume?.outlierRatios?.slice() ?? [], meanScores = resume?.meanScores?.slice() ?? [];
    if (needLod && !resume) {
      progress("outliers", 0, L);
      await walker.embedAll();
      for (let l = 0; l < L; l++) {
        await model.loadBlock(l);
        const stats = walker.newStats();
        await walker.runBlock(l, stats, "lod");
        const sq = await walker.sqrtScalers(stats, l);
        const block = model.blocks[l]!;
        const r = await outlierCount(
          gpu,
          LINEARS.map((lin) => ({ w: block.linears[lin], sqrtR: sq[groupOf(lin)] })),
          opts.owlM,
        );
        D.push(outlierRatio(r.count, r.numel));
        meanScores.push(r.mean);
        walker.releaseStats(stats);
        walker.releaseStats(sq);
        model.releaseBlock(l);
        walker.swap();
        progress("outliers", l + 1, L);
      }
    }
    // 2. Allocation.
    const S = opts.sparsity;
    let sparsities: number[];
    let nPerBlock: number[] | undefined;
    let meanN: number | undefined;
    if (resume) {
      sparsities = resume.sparsities.slice();
      nPerBlock = resume.nPerBlock?.slice();
      meanN = resume.meanN ?? undefined;
    } else if (opts.pattern.kind === "nm" && alloc === "owl") {
      const mixed = owlMixedNM(D, opts.pattern.n, opts.pattern.m, opts.owlLambda, {
        rounding: settings.nmRounding,
      });
      nPerBlock = mixed.n;
      meanN = mixed.meanN;
      sparsities = mixed.n.map((n) => n / (opts.pattern as { m: number }).m);
    } else if (opts.pattern.kind === "nm") {
      nPerBlock = new Array(L).fill(opts.pattern.n);
      sparsities = nPerBlock.map((n) => n / (opts.pattern as { m: number }).m);
    } else if (alloc === "owl") sparsities = owlAllocation(D, S, opts.owlLambda);
    else if (alloc === "dlp") sparsities = dlpAllocation(meanScores, S, settings.alpha);
    else if (alloc === "depth") sparsities = depthAllocation(L, S, settings.beta);
    else sparsities = uniformAllocation(L, S);

    // 3. Sequential pruning.
    const counts: PruneResult["counts"] = resume?.counts.slice() ?? [];
    let zeros = resume?.zeros ?? 0, total = resume?.total ?? 0;
    const needStats = isWanda && opts.method !== "dense";
    const needProp = needStats || sgpt; // block l+1's inputs come from the pruned block l
    const dampingRetries: DampingRetry[] = resume?.dampingRetries.slice() ?? [];
    const start = resume?.blocksDone ?? 0;
    const checkpoint = async (blocksDone: number) => {
      await opts.onCheckpoint?.({
        version: CHECKPOINT_VERSION,
        job,
        blocksDone,
        nBlocks: L,
        adapter: gpu.adapterName,
        outlierRatios: needLod ? D.slice() : null,
        meanScores: needLod ? meanScores.slice() : null,
        sparsities: sparsities.slice(),
        nPerBlock: nPerBlock?.slice() ?? null,
        meanN: meanN ?? null,
        counts: counts.slice(),
        zeros,
        total,
        dampingRetries: dampingRetries.slice(),
      });
    };
    if (!resume) await checkpoint(0);
    if (needProp && start < L) {
      await walker.embedAll();
      // Resumed: the finished blocks' pruned weights give the next block its inputs, as they did.
      if (start > 0) progress("resume", 0, start);
      for (let l = 0; l < start; l++) {
        await model.loadBlock(l, await readBlockLinears(weights, l));
        await walker.runBlock(l, null, "resume");
        walker.swap();
        model.releaseBlock(l);
        progress("resume", l + 1, start);
      }
    }
    progress("prune", start, L);
    for (let l = start; l < L; l++) {
      const block = await model.loadBlock(l);
      let sq: Record<LinearInputGroup, GPUBuffer> | null = null;
      if (needStats) {
        const stats = walker.newStats();
        await walker.runBlock(l, stats, "calibrate");
        sq = await walker.sqrtScalers(stats, l);
        walker.releaseStats(stats);
      }
      const factors = sgpt
        ? await walker.factors(l, await walker.hessians(l), opts.percdamp, dampingRetries)
        : null;
      for (const lin of LINEARS) {
        const w = block.linears[lin];
        const [rows, cols] = linearShape(c, lin);
        let expected = 0;
        if (opts.method !== "dense") {
          let mask;
          if (factors) {
            const nm = nPerBlock ? { n: nPerBlock[l], m: (opts.pattern as { m: number }).m } : undefined;
            const sparsity = sparsities[l], blocksize = opts.blocksize;
            ({ mask, expected } = sparsegptPrune(gpu, w, factors[groupOf(lin)], { sparsity, blocksize, nm }));
          } else if (nPerBlock) {
            mask = await nmMask(
              gpu,
              w,
              sq ? sq[groupOf(lin)] : null,
              nPerBlock[l],
              (opts.pattern as { m: number }).m,
            );
            expected = rows * (cols / (opts.pattern as { m: number }).m) * nPerBlock[l];
          } else if (isWanda) {
            const k = pruneCount(cols, sparsities[l]);
            mask = await wandaRowMask(gpu, w, sq![groupOf(lin)], k);
            expected = rows * k;
          } else {
            mask = await magnitudeMask(gpu, w, sparsities[l], {});
            expected = Math.floor(rows * cols * sparsities[l]);
          }
          const m = await readMask(gpu, mask, rows, cols);
          let pruned = 0;
          for (let i = 0; i < m.length; i++) pruned += m[i];
          if (!factors) applyMask(gpu, w, mask); // SparseGPT zeroed (and updated) W itself
          releaseMask(gpu, mask);
          counts.push({ name: linearWeight(l, lin), pruned, expected, numel: rows * cols });
        }
        const data = await readMatrix(gpu, w);
        for (let i = 0; i < data.length; i++) {
          if (data[i] === 0) zeros++;
          else if (!Number.isFinite(data[i])) throw nonFinite(linearWeight(l, lin), i, cols, data[i]);
        }
        total += data.length;
        await weights.put(linearWeight(l, lin), data);
      }
      if (sq) walker.releaseStats(sq);
      walker.releaseFactors();
      if (needProp) {
        await walker.runBlock(l, null, "propagate"); // outputs of the PRUNED block feed block l+1
        walker.swap();
      }
      model.releaseBlock(l);
      progress("prune", l + 1, L);
      await checkpoint(l + 1);
    }
    const blocks: BlockReport[] = sparsities.map((s, index) => ({
      index,
      outlier_ratio: needLod ? D[index] : null,
      sparsity: opts.method === "dense" ? 0 : s,
    }));
    return {
      blocks,
      weights,
      realisedSparsity: zeros / total,
      counts,
      meanN,
      ...(sgpt ? { dampingRetries } : {}),
      ...(resume ? { resumedAfterBlock: resume.blocksDone } : {}),
    };
  } finally {
    walker.release();
    model.release();
  }
}
