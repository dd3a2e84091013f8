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
 *    no statistics, so it skips the propagation.
 *
 * Memory: only the current block's weights, its statistics, and the calibration activations
 * (one buffer per window, inputs and outputs) live on the GPU.
 * @module
 */
import { ArgumentError } from "../errors.ts";
import type { Gpu } from "../gpu/device.ts";
import { readMatrix } from "../gpu/matrix.ts";
import { type LinearName, LINEARS, linearShape } from "../model/config.ts";
import { ForwardRunner, GpuModel, GROUP_LINEARS, type LinearInputGroup } from "../model/forward.ts";
import { linearWeight } from "../model/names.ts";
import type { WeightSource } from "../model/weights.ts";
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
  depthAllocation,
  dlpAllocation,
  outlierRatio,
  owlAllocation,
  owlMixedNM,
  pruneCount,
  uniformAllocation,
} from "./allocation.ts";

export const METHODS = ["dense", "magnitude", "wanda", "owl-magnitude", "owl-wanda"] as const;
export type Method = typeof METHODS[number];
export const ALLOCATIONS = ["uniform", "owl", "depth", "dlp"] as const;
export type Allocation = typeof ALLOCATIONS[number];

/** Unstructured, or N pruned in every M consecutive input columns. */
export type Pattern = { kind: "unstructured" } | { kind: "nm"; n: number; m: number };

export interface PruneOptions {
  method: Method;
  /** Default: "owl" for owl-* methods, "uniform" otherwise. */
  allocation?: Allocation;
  sparsity: number;
  pattern: Pattern;
  owlM: number;
  owlLambda: number;
  /** Depth schedule step (allocation "depth"). */
  beta?: number;
  /** DLP range (allocation "dlp"). */
  alpha?: number;
  /** Mixed N:M rounding (OWL with an N:M pattern). */
  nmRounding?: "reference" | "mass-preserving";
  /** Calibration windows, each seqlen tokens. */
  calibration: ArrayLike<number>[];
  onProgress?: (phase: string, done: number, total: number) => void;
}

export interface BlockReport {
  index: number;
  /** D_l in percent (OWL/DLP allocations), else null. */
  outlier_ratio: number | null;
  /** Target sparsity of the block (for N:M: pruned fraction n_l / m). */
  sparsity: number;
}

export interface PruneResult {
  blocks: BlockReport[];
  /** Pruned weights by canonical tensor name, f32 [C_out, C_in]. */
  weights: Map<string, Float32Array>;
  /** Zeros / total over all pruned linears. */
  realisedSparsity: number;
  /** Per linear: pruned count, and the count the floor rule asks for. */
  counts: { name: string; pruned: number; expected: number; numel: number }[];
  /** Mean N of a mixed N:M allocation (when used). */
  meanN?: number;
}

/** The allocation rule a method uses when none is given. */
export function defaultAllocation(method: Method): Allocation {
  return method.startsWith("owl-") ? "owl" : "uniform";
}

/** Validate options that do not depend on the model (throws ArgumentError). */
export function validatePruneOptions(o: PruneOptions): void {
  if (!(o.sparsity >= 0 && o.sparsity < 1)) {
    throw new ArgumentError(`--sparsity must be in [0, 1), got ${o.sparsity}`);
  }
  if (o.calibration.length === 0) throw new ArgumentError("--nsamples must be at least 1");
  if (o.pattern.kind === "nm") {
    const { n, m } = o.pattern;
    if (!(Number.isInteger(n) && Number.isInteger(m) && m >= 1 && n >= 0 && n <= m)) {
      throw new ArgumentError(`bad N:M pattern ${n}:${m}: need integers 0 <= N <= M, M >= 1`);
    }
  }
  const alloc = o.allocation ?? defaultAllocation(o.method);
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

/** Runs the walk over a model; one instance per prune. */
class Walker {
  readonly runner: ForwardRunner;
  inps: GPUBuffer[] = [];
  outs: GPUBuffer[] = [];

  constructor(readonly gpu: Gpu, readonly model: GpuModel, readonly windows: ArrayLike<number>[]) {
    this.runner = new ForwardRunner(model, windows[0].length);
  }

  get seqlen(): number {
    return this.windows[0].length;
  }

  /** inps[w] = embeddings of window w. */
  embedAll(): void {
    const { gpu, runner } = this;
    const bytes = this.seqlen * this.model.config.dim * 4;
    if (this.inps.length === 0) {
      this.inps = this.windows.map((_, w) => gpu.buffer(bytes, `calib-in${w}`));
      this.outs = this.windows.map((_, w) => gpu.buffer(bytes, `calib-out${w}`));
    }
    this.windows.forEach((ids, w) => {
      runner.embed(ids);
      gpu.copy(runner.x, 0, this.inps[w], 0, bytes);
    });
  }

  /** outs[w] = block l (inps[w]) for every window, accumulating statistics when given. */
  async runBlock(l: number, stats: Stats | null, phase: string): Promise<void> {
    const { gpu, runner } = this;
    const T = this.seqlen, C = this.model.config;
    const bytes = T * C.dim * 4;
    for (let w = 0; w < this.windows.length; w++) {
      gpu.copy(this.inps[w], 0, runner.x, 0, bytes);
      runner.block(
        l,
        T,
        0,
        stats ? (g, x, t, cIn) => updateScalerRow(gpu, x, stats[g], t, cIn, w, 1) : undefined,
      );
      gpu.copy(runner.x, 0, this.outs[w], 0, bytes);
      if (w % 8 === 7) await gpu.sync(); // keep the queue short and the progress honest
    }
    await gpu.sync();
    void phase;
  }

  swap(): void {
    [this.inps, this.outs] = [this.outs, this.inps];
  }

  newStats(): Stats {
    const c = this.model.config;
    const cIn = (g: LinearInputGroup) => linearShape(c, GROUP_LINEARS[g][0])[1];
    const mk = (g: LinearInputGroup) => this.gpu.buffer(cIn(g) * 4, `scaler-${g}`);
    return { qkv: mk("qkv"), o: mk("o"), gateup: mk("gateup"), down: mk("down") };
  }

  /** sqrt(r) per group, computed on the host in float64 and rounded to f32 (see kernels). */
  async sqrtScalers(stats: Stats): Promise<Record<LinearInputGroup, GPUBuffer>> {
    const out = {} as Record<LinearInputGroup, GPUBuffer>;
    for (const g of Object.keys(stats) as LinearInputGroup[]) {
      const r = await this.gpu.readF32(stats[g]);
      out[g] = this.gpu.upload(Float32Array.from(r, (v) => Math.sqrt(v)), `sqrt-${g}`);
    }
    return out;
  }

  releaseStats(s: Record<LinearInputGroup, GPUBuffer>): void {
    this.gpu.release(...Object.values(s));
  }

  release(): void {
    this.runner.release();
    this.gpu.release(...this.inps, ...this.outs);
  }
}

/** Prune every block of `source` as `opts` says; returns pruned weights and the report. */
export async function prune(gpu: Gpu, source: WeightSource, opts: PruneOptions): Promise<PruneResult> {
  validatePruneOptions(opts);
  const c = source.config;
  const L = c.nLayers;
  const alloc = opts.allocation ?? defaultAllocation(opts.method);
  const isWanda = opts.method === "wanda" || opts.method === "owl-wanda";
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
      if (!(w[i] >= 0 && w[i] < c.vocabSize)) {
        throw new ArgumentError(
          `calibration token id ${w[i]} is outside the model's vocabulary of ${c.vocabSize}`,
        );
      }
    }
  }
  const model = await GpuModel.load(gpu, source, { lazyBlocks: true, dtype: "f32" });
  const walker = new Walker(gpu, model, opts.calibration);
  const progress = opts.onProgress ?? (() => {});
  try {
    // 1. LOD pass on the dense model.
    const needLod = alloc === "owl" || alloc === "dlp";
    const D: number[] = [], meanScores: number[] = [];
    if (needLod) {
      progress("outliers", 0, L);
      walker.embedAll();
      for (let l = 0; l < L; l++) {
        await model.loadBlock(l);
        const stats = walker.newStats();
        await walker.runBlock(l, stats, "lod");
        const sq = await walker.sqrtScalers(stats);
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
    if (opts.pattern.kind === "nm" && alloc === "owl") {
      const mixed = owlMixedNM(D, opts.pattern.n, opts.pattern.m, opts.owlLambda, {
        rounding: opts.nmRounding ?? "reference",
      });
      nPerBlock = mixed.n;
      meanN = mixed.meanN;
      sparsities = mixed.n.map((n) => n / (opts.pattern as { m: number }).m);
    } else if (opts.pattern.kind === "nm") {
      nPerBlock = new Array(L).fill(opts.pattern.n);
      sparsities = nPerBlock.map((n) => n / (opts.pattern as { m: number }).m);
    } else if (alloc === "owl") sparsities = owlAllocation(D, S, opts.owlLambda);
    else if (alloc === "dlp") sparsities = dlpAllocation(meanScores, S, opts.alpha ?? 0.15);
    else if (alloc === "depth") sparsities = depthAllocation(L, S, opts.beta ?? 0.02);
    else sparsities = uniformAllocation(L, S);

    // 3. Sequential pruning.
    const weights = new Map<string, Float32Array>();
    const counts: PruneResult["counts"] = [];
    let zeros = 0, total = 0;
    const needStats = isWanda && opts.method !== "dense";
    if (needStats) walker.embedAll();
    progress("prune", 0, L);
    for (let l = 0; l < L; l++) {
      const block = await model.loadBlock(l);
      let sq: Record<LinearInputGroup, GPUBuffer> | null = null;
      if (needStats) {
        const stats = walker.newStats();
        await walker.runBlock(l, stats, "calibrate");
        sq = await walker.sqrtScalers(stats);
        walker.releaseStats(stats);
      }
      for (const lin of LINEARS) {
        const w = block.linears[lin];
        const [rows, cols] = linearShape(c, lin);
        let expected = 0;
        if (opts.method !== "dense") {
          let mask;
          if (nPerBlock) {
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
          applyMask(gpu, w, mask);
          releaseMask(gpu, mask);
          counts.push({ name: linearWeight(l, lin), pruned, expected, numel: rows * cols });
        }
        const data = await readMatrix(gpu, w);
        for (let i = 0; i < data.length; i++) if (data[i] === 0) zeros++;
        total += data.length;
        weights.set(linearWeight(l, lin), data);
      }
      if (sq) walker.releaseStats(sq);
      if (needStats) {
        await walker.runBlock(l, null, "propagate"); // outputs of the PRUNED block feed block l+1
        walker.swap();
      }
      model.releaseBlock(l);
      progress("prune", l + 1, L);
    }
    const blocks: BlockReport[] = sparsities.map((s, index) => ({
      index,
      outlier_ratio: needLod ? D[index] : null,
      sparsity: opts.method === "dense" ? 0 : s,
    }));
    return { blocks, weights, realisedSparsity: zeros / total, counts, meanN };
  } finally {
    walker.release();
    model.release();
  }
}
