/**
 * Pruning-kernel suite: for one LLaMA-shaped decoder block with random weights, the OWL outlier
 * count over its 7 linears (two passes over every weight plus read-backs) and the Wanda row masks
 * of the 7 linears at 50%. Wall clock around `gpu.sync()` (the outlier count reads back anyway),
 * one warm-up run (it also compiles), then the median of `reps`.
 *
 * LLaMA-7B's block (hidden 4096, intermediate 11008) is 202M weights; on a CPU adapter use a
 * reduced shape such as hidden 1024 / intermediate 2752 (same 1 : 2.6875 ratio).
 * @module
 */
import type { Gpu } from "../src/gpu/device.ts";
import { type GpuMatrix, releaseMatrix, uploadMatrix } from "../src/gpu/matrix.ts";
import { type KernelStyle, outlierCount, releaseMask, wandaRowMask } from "../src/ops/prune_ops.ts";
import { median } from "./sparse.ts";

export interface PruneBenchRow {
  name: string;
  /** C_out x C_in of one linear, or a description of the block. */
  shape: string;
  /** Median wall milliseconds. */
  ms: number;
}

export interface PruneBenchOptions {
  hidden: number;
  intermediate: number;
  /** Timed runs after the warm-up (default 5). */
  reps?: number;
  /** Kernel versions to time (default: the adapter's own). */
  styles?: KernelStyle[];
}

async function wallMs(reps: number, run: () => Promise<void>): Promise<number> {
  await run(); // warm-up (compiles the pipelines)
  const ms: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await run();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

/** Deterministic values in [-scale, scale) without a big host array per call (LCG). */
export function randomValues(n: number, seed: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    a[i] = (x / 2 ** 32 * 2 - 1) * scale;
  }
  return a;
}

/** Time the outlier count and the 7 row masks of one block; see the module doc. */
export async function benchPruneKernels(gpu: Gpu, opts: PruneBenchOptions): Promise<PruneBenchRow[]> {
  const { hidden: h, intermediate: m } = opts;
  const reps = opts.reps ?? 5;
  const styles = opts.styles ?? [gpu.isCpu ? "cpu" : "gpu"];
  const shapes: [string, number, number][] = [
    ["q", h, h],
    ["k", h, h],
    ["v", h, h],
    ["o", h, h],
    ["gate", m, h],
    ["up", m, h],
    ["down", h, m],
  ];
  const linears: { name: string; w: GpuMatrix; sqrtR: GPUBuffer }[] = [];
  const rows: PruneBenchRow[] = [];
  try {
    for (const [i, [name, cout, cin]] of shapes.entries()) {
      const w = uploadMatrix(gpu, randomValues(cout * cin, 1 + i, 0.05), cout, cin, name);
      const sqrtR = gpu.upload(randomValues(cin, 100 + i, 1).map((x) => Math.abs(x) + 0.01), `${name}-sqrtR`);
      linears.push({ name, w, sqrtR });
    }
    const numel = linears.reduce((a, l) => a + l.w.rows * l.w.cols, 0);
    const block = `h${h} i${m} (${(numel / 1e6).toFixed(1)}M weights)`;
    for (const style of styles) {
      const ms = await wallMs(reps, async () => {
        await outlierCount(gpu, linears, 5, { style });
      });
      rows.push({ name: `outlier count, 7 linears [${style}]`, shape: block, ms });
      let total = 0;
      for (const { name, w, sqrtR } of linears) {
        const k = Math.floor(w.cols * 0.5);
        const t = await wallMs(reps, async () => {
          const mask = wandaRowMask(gpu, w, sqrtR, k, { style });
          await gpu.sync();
          releaseMask(gpu, mask);
        });
        rows.push({ name: `wanda row mask 50% ${name} [${style}]`, shape: `${w.rows}x${w.cols}`, ms: t });
        total += t;
      }
      rows.push({ name: `wanda row masks 50%, 7 linears [${style}]`, shape: block, ms: total });
    }
  } finally {
    for (const l of linears) {
      releaseMatrix(gpu, l.w);
      gpu.release(l.sqrtR);
    }
  }
  return rows;
}
