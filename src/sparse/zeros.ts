/**
 * Sparse weights read off a pruned checkpoint's zeros: a model whose pruned weights are stored as
 * zeros (a Hugging Face directory written by `deno task prune`, or by the Wanda, SparseGPT or OWL
 * research code, or a llama2.c file) can run its pruned linears with the sparse kernels without a
 * model.sparse.safetensors. Each block linear is read once to count its zeros; those with at least
 * `minSparsity` of them are packed (unstructured, f32 values; the upload converts to the model's
 * dtype) when the model loads them.
 * @module
 */
import { ArgumentError } from "../errors.ts";
import { LINEARS, linearShape } from "../model/config.ts";
import type { SparseWeights } from "../model/forward.ts";
import { linearWeight } from "../model/names.ts";
import type { WeightSource } from "../model/weights.ts";
import { packUnstructured, type SparseMatrix } from "./format.ts";

/**
 * Default least fraction of zeros for a linear to run sparse: below about half, the sparse GEMV is
 * no faster than the dense one (ARCHITECTURE.md, "Sparse formats and kernels").
 *
 * @example The default threshold of sparseWeightsFromZeros
 * ```ts
 * import { ZEROS_MIN_SPARSITY } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.ok(ZEROS_MIN_SPARSITY > 0 && ZEROS_MIN_SPARSITY < 1);
 * ```
 */
export const ZEROS_MIN_SPARSITY = 0.4;

/**
 * {@linkcode SparseWeights} found from zeros, with every block linear's measured fraction of zeros.
 *
 * @example The fractions of zeros of a dense model's linears are all near 0
 * ```ts
 * import { openWeights, sparseWeightsFromZeros, type ZerosSparseWeights } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const z: ZerosSparseWeights = await sparseWeightsFromZeros(source);
 * assert.equal(z.sparsity.size, 6 * 7); // 6 blocks of 7 linears
 * assert.ok([...z.sparsity.values()].every((s) => s < 0.01));
 * assert.equal(z.names.length, 0); // none is pruned, so none runs sparse
 * source.close();
 * ```
 */
export interface ZerosSparseWeights extends SparseWeights {
  /** Fraction of zeros of every block linear, by tensor name. */
  readonly sparsity: ReadonlyMap<string, number>;
  /** The linears that run sparse (at least the threshold of zeros), in block order. */
  readonly names: readonly string[];
}

/**
 * Options of {@linkcode sparseWeightsFromZeros}.
 *
 * @example A stricter threshold, with progress
 * ```ts
 * import { openWeights, sparseWeightsFromZeros, type ZerosOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const source = await openWeights("stories15M");
 * const seen: number[] = [];
 * const opts: ZerosOptions = { minSparsity: 0.9, onProgress: (done, total) => seen.push(done / total) };
 * const z = await sparseWeightsFromZeros(source, opts);
 * assert.equal(seen.length, 42); // one call per linear scanned
 * assert.equal(seen.at(-1), 1);
 * assert.equal(z.names.length, 0);
 * await assert.rejects(() => sparseWeightsFromZeros(source, { minSparsity: 0 })); // (0, 1] only
 * source.close();
 * ```
 */
export interface ZerosOptions {
  /** Least fraction of zeros for a linear to run sparse, in (0, 1]. Default ZEROS_MIN_SPARSITY. */
  minSparsity?: number;
  /** Called after each linear is scanned (progress on big models). */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Scan `source`'s block linears for zeros and serve those with at least `minSparsity` of them as
 * sparse matrices (give the result to `GpuModel.load`'s `sparse` option). Reads each linear once
 * here and once more when the model uploads it.
 *
 * @example Prune one linear by hand, and only that one runs sparse
 * ```ts
 * import {
 *   Gpu, GpuModel, linearWeight, openWeights, sparseWeightsFromZeros, type WeightSource,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const base = await openWeights("stories15M");
 * const q0 = linearWeight(0, "q");
 * const pruned = (await base.readF32(q0)).map((w, i) => (i % 4 === 0 ? w : 0)); // 75% zeros
 * // A source that serves the pruned q_proj of block 0 and everything else unchanged.
 * const source: WeightSource = { ...base, readF32: (n) => n === q0 ? Promise.resolve(pruned) : base.readF32(n) };
 * const z = await sparseWeightsFromZeros(source);
 * assert.deepEqual(z.names, [q0]);
 * assert.equal(z.sparsity.get(q0), 0.75);
 * assert.ok(z.isSparse(q0) && !z.isSparse(linearWeight(0, "k")));
 * assert.equal((await z.readSparse(q0)).rows, 288);
 * const gpu = await Gpu.create();
 * const model = await GpuModel.load(gpu, source, { sparse: z });
 * assert.equal(model.sparseLinearCount, 1);
 * model.release();
 * gpu.destroy();
 * base.close();
 * ```
 */
export async function sparseWeightsFromZeros(
  source: Pick<WeightSource, "config" | "readF32">,
  opts: ZerosOptions = {},
): Promise<ZerosSparseWeights> {
  const min = opts.minSparsity ?? ZEROS_MIN_SPARSITY;
  if (!(min > 0 && min <= 1)) throw new ArgumentError(`minSparsity must be in (0, 1], got ${min}`);
  const c = source.config;
  const sparsity = new Map<string, number>();
  const names: string[] = [];
  const shapes = new Map<string, [number, number]>();
  const total = c.nLayers * LINEARS.length;
  for (let l = 0; l < c.nLayers; l++) {
    for (const lin of LINEARS) {
      const name = linearWeight(l, lin);
      const w = await source.readF32(name);
      let zeros = 0;
      for (let i = 0; i < w.length; i++) if (w[i] === 0) zeros++;
      const s = zeros / w.length;
      sparsity.set(name, s);
      shapes.set(name, linearShape(c, lin));
      if (s >= min) names.push(name);
      opts.onProgress?.(sparsity.size, total);
    }
  }
  const chosen = new Set(names);
  return {
    config: c,
    sparsity,
    names,
    isSparse: (name) => chosen.has(name),
    readSparse: async (name): Promise<SparseMatrix> => {
      if (!chosen.has(name)) throw new ArgumentError(`${name} is not one of the linears that run sparse`);
      const [rows, cols] = shapes.get(name)!;
      return packUnstructured(await source.readF32(name), rows, cols);
    },
  };
}
