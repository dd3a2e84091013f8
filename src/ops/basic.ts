/**
 * Thin launchers for the small kernels of the forward pass and the losses. Each records into
 * the current batch; shapes travel in uniforms, so one pipeline serves every model.
 * @module
 */
import { attentionKey, type AttentionOptions, attentionWgsl, attentionWorkgroups } from "../../kernels/attention.ts";
import { packUniforms } from "../../kernels/common.ts";
import { ELEMENTWISE_WG, type ElementwiseOp, elementwiseWgsl } from "../../kernels/elementwise.ts";
import { EMBEDDING_WG, embeddingWgsl } from "../../kernels/embedding.ts";
import { LOSS_WG, type LossKind, lossWgsl } from "../../kernels/loss.ts";
import { RMSNORM_WG, rmsnormWgsl } from "../../kernels/rmsnorm.ts";
import { ROPE_WG, type RopeLayout, ropeWgsl } from "../../kernels/rope.ts";
import { UnsupportedError } from "../errors.ts";
import type { Gpu } from "../gpu/device.ts";
import type { GpuMatrix } from "../gpu/matrix.ts";

/** a[i] = a[i] + b[i] (op "add") or silu(a[i]) * b[i] (op "swiglu"), n elements. */
export function elementwise(gpu: Gpu, op: ElementwiseOp, a: GPUBuffer, b: GPUBuffer, n: number): void {
  const pipe = gpu.pipeline(`elementwise/${op}`, () => elementwiseWgsl(op));
  gpu.dispatch(pipe, [a, b], packUniforms([n]), Math.ceil(n / ELEMENTWISE_WG));
}

/** out[T, dim] = table[ids] (table possibly chunked by rows). */
export function embedding(gpu: Gpu, ids: GPUBuffer, table: GpuMatrix, out: GPUBuffer, T: number): void {
  const pipe = gpu.pipeline(`embedding/${table.dtype}`, () => embeddingWgsl(table.dtype));
  for (const c of table.chunks) {
    const u = packUniforms([T, table.cols, c.rowStart, c.rows]);
    gpu.dispatch(pipe, [ids, c.buffer, out], u, Math.ceil((T * table.cols) / EMBEDDING_WG));
  }
}

export function rmsnorm(gpu: Gpu, x: GPUBuffer, w: GPUBuffer, y: GPUBuffer, T: number, dim: number, eps: number): void {
  const pipe = gpu.pipeline("rmsnorm", rmsnormWgsl);
  gpu.dispatch(pipe, [x, w, y], packUniforms([T, dim, { f32: eps }]), Math.ceil(T / RMSNORM_WG));
}

/** In-place RoPE on x [T, nHeads * headDim] for positions pos0 .. pos0 + T - 1. */
export function rope(
  gpu: Gpu,
  layout: RopeLayout,
  x: GPUBuffer,
  cos: GPUBuffer,
  sin: GPUBuffer,
  T: number,
  nHeads: number,
  headDim: number,
  pos0: number,
): void {
  const pipe = gpu.pipeline(`rope/${layout}`, () => ropeWgsl(layout));
  const n = T * nHeads * (headDim / 2);
  gpu.dispatch(pipe, [x, cos, sin], packUniforms([T, nHeads, headDim, pos0]), Math.ceil(n / ROPE_WG));
}

/** Causal GQA attention of T queries (positions pos0..) over the K/V cache. */
export function attention(
  gpu: Gpu,
  q: GPUBuffer,
  k: GPUBuffer,
  v: GPUBuffer,
  out: GPUBuffer,
  T: number,
  nHeads: number,
  nKvHeads: number,
  headDim: number,
  pos0: number,
): void {
  if (headDim % 4 !== 0) throw new UnsupportedError(`attention needs headDim % 4 == 0, got ${headDim}`);
  // Query tiles share K/V loads: long tiles pay off on CPU adapters (hd 48, T 256 on lavapipe:
  // tq 4 28 ms, tq 8 16 ms, tq 16 12 ms); GPUs keep registers small.
  const tq = T === 1 ? 1 : gpu.isCpu ? (headDim <= 64 ? 16 : 8) : 4;
  const o: AttentionOptions = { headDim, tq, workgroupSize: gpu.isCpu ? 8 : 64 };
  const pipe = gpu.pipeline(attentionKey(o), () => attentionWgsl(o));
  const u = packUniforms([T, nHeads, nKvHeads, pos0, { f32: 1 / Math.sqrt(headDim) }]);
  gpu.dispatch(pipe, [q, k, v, out], u, attentionWorkgroups(o, T, nHeads));
}

/** Per-row NLL (second = targets u32[R]) or KL(P || Q) (second = Q logits) into out f32[R]. */
export function loss(gpu: Gpu, kind: LossKind, p: GPUBuffer, second: GPUBuffer, out: GPUBuffer, R: number, V: number): void {
  const pipe = gpu.pipeline(`loss/${kind}`, () => lossWgsl(kind));
  gpu.dispatch(pipe, [p, second, out], packUniforms([R, V]), Math.ceil(R / LOSS_WG));
}
