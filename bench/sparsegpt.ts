/**
 * SparseGPT suite: one LLaMA-shaped decoder block with random weights and random calibration
 * inputs: the Hessian accumulation of its 4 linear inputs (q/k/v, o, gate/up, down) over `seqs`
 * sequences of `tokens` tokens, the 4 factorisations (damping, Cholesky, inverse, upper factor),
 * and the OBS pass of its 7 linears at 50%. Wall clock around `gpu.sync()`, after a warm-up run on
 * a small shape that compiles the pipelines.
 *
 * LLaMA-7B's block with 128 x 2048 calibration tokens is the real-GPU shape; CPU adapters get a
 * reduced one (the row says so).
 * @module
 */
import type { Gpu } from "../src/gpu/device.ts";
import { releaseMatrix, uploadMatrix } from "../src/gpu/matrix.ts";
import { releaseMask } from "../src/ops/prune_ops.ts";
import {
  factorHessian,
  newHessian,
  releaseHessian,
  releaseInverseFactor,
  sparsegptPrune,
  updateHessian,
} from "../src/ops/sparsegpt.ts";
import { randomValues } from "./prune_kernels.ts";

export interface SparseGPTBenchRow {
  shape: string;
  calibration: string;
  hessian_s: number;
  factor_s: number;
  prune_s: number;
  total_s: number;
  note?: string;
}

export interface SparseGPTBlockShape {
  dim: number;
  hidden: number;
  seqs: number;
  tokens: number;
}

export const LLAMA7B_SPARSEGPT: SparseGPTBlockShape = { dim: 4096, hidden: 11008, seqs: 128, tokens: 2048 };
/** 1/4 of LLaMA-7B's widths and 1/64 of its calibration tokens: a few tens of seconds on lavapipe. */
export const CPU_SPARSEGPT: SparseGPTBlockShape = { dim: 1024, hidden: 2752, seqs: 8, tokens: 512 };

async function runBlock(gpu: Gpu, s: SparseGPTBlockShape): Promise<Omit<SparseGPTBenchRow, "note">> {
  const { dim, hidden, seqs, tokens } = s;
  // One random calibration batch per input width, reused for every sequence (the cost is the same).
  const xDim = gpu.upload(randomValues(tokens * dim, 11, 1), "x-dim");
  const xHid = gpu.upload(randomValues(tokens * hidden, 12, 1), "x-hidden");
  const widths = { qkv: dim, o: dim, gateup: dim, down: hidden } as const;
  const inputs = { qkv: xDim, o: xDim, gateup: xDim, down: xHid } as const;
  const groups = Object.keys(widths) as (keyof typeof widths)[];
  const hs = Object.fromEntries(groups.map((g) => [g, newHessian(gpu, widths[g])])) as Record<
    keyof typeof widths,
    ReturnType<typeof newHessian>
  >;
  const t0 = performance.now();
  for (let q = 0; q < seqs; q++) {
    for (const g of groups) updateHessian(gpu, hs[g], inputs[g], tokens);
    if (q % 4 === 3) await gpu.sync();
  }
  await gpu.sync();
  const t1 = performance.now();
  const fs = {} as Record<keyof typeof widths, Awaited<ReturnType<typeof factorHessian>>>;
  for (const g of groups) fs[g] = await factorHessian(gpu, hs[g], { percdamp: 0.01, label: g });
  await gpu.sync();
  const t2 = performance.now();
  const linears: [keyof typeof widths, number, number][] = [
    ["qkv", dim, dim],
    ["qkv", dim, dim],
    ["qkv", dim, dim],
    ["o", dim, dim],
    ["gateup", hidden, dim],
    ["gateup", hidden, dim],
    ["down", dim, hidden],
  ];
  for (const [i, [g, rows, cols]] of linears.entries()) {
    const w = uploadMatrix(gpu, randomValues(rows * cols, 100 + i, 0.05), rows, cols, `w${i}`, "f32");
    const { mask } = sparsegptPrune(gpu, w, fs[g], { sparsity: 0.5, blocksize: 128 });
    await gpu.sync();
    releaseMask(gpu, mask);
    releaseMatrix(gpu, w);
  }
  const t3 = performance.now();
  for (const g of groups) {
    releaseInverseFactor(gpu, fs[g]);
    releaseHessian(gpu, hs[g]);
  }
  gpu.release(xDim, xHid);
  return {
    shape: `dim ${dim}, hidden ${hidden}, 7 linears`,
    calibration: `${seqs} x ${tokens} tokens`,
    hessian_s: (t1 - t0) / 1000,
    factor_s: (t2 - t1) / 1000,
    prune_s: (t3 - t2) / 1000,
    total_s: (t3 - t0) / 1000,
  };
}

/** Time SparseGPT on one block: LLaMA-7B-shaped on GPUs, reduced on CPU adapters (or `shape`). */
export async function benchSparseGPT(gpu: Gpu, shape?: SparseGPTBlockShape): Promise<SparseGPTBenchRow> {
  const s = shape ?? (gpu.isCpu ? CPU_SPARSEGPT : LLAMA7B_SPARSEGPT);
  await runBlock(gpu, { dim: 64, hidden: 128, seqs: 1, tokens: 16 }); // compiles the pipelines
  const row: SparseGPTBenchRow = await runBlock(gpu, s);
  if (s !== LLAMA7B_SPARSEGPT) {
    row.note = `reduced from LLaMA-7B (dim 4096, hidden 11008, 128 x 2048 tokens)${
      gpu.isCpu ? " on a CPU adapter" : ""
    }`;
  }
  return row;
}

export function sparsegptTable(r: SparseGPTBenchRow): string {
  const f = (x: number) => x.toFixed(2).padStart(8);
  return [
    "shape                               calibration          hessian s  factor s   prune s   total s",
    `${r.shape.padEnd(36)}${r.calibration.padEnd(20)}${f(r.hessian_s)}  ${f(r.factor_s)}  ${f(r.prune_s)}  ${
      f(r.total_s)
    }`,
    ...(r.note ? [`  (${r.note})`] : []),
  ].join("\n");
}
