/**
 * Thin launchers for the small kernels of the forward pass and the losses. Each records into
 * the current batch; shapes travel in uniforms, so one pipeline serves every model.
 * @module
 */
import {
  attentionKey,
  type AttentionOptions,
  attentionWgsl,
  attentionWorkgroups,
} from "../../kernels/attention.ts";
import { CPU_LOOP_LIMIT, packUniforms } from "../../kernels/common.ts";
import { ELEMENTWISE_WG, type ElementwiseOp, elementwiseWgsl } from "../../kernels/elementwise.ts";
import { EMBEDDING_WG, embeddingWgsl } from "../../kernels/embedding.ts";
import { LOSS_MAX_V, type LossKind, lossWgsl, lossWorkgroups } from "../../kernels/loss.ts";
import { RMSNORM_WG, rmsnormWgsl } from "../../kernels/rmsnorm.ts";
import { ROPE_WG, type RopeLayout, ropeWgsl } from "../../kernels/rope.ts";
import { UnsupportedError } from "../errors.ts";
import type { Binding, Gpu } from "../gpu/device.ts";
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

/**
 * Record y[t, :] = RMSNorm(x[t, :]) * w for T rows of `dim` (f32) into the current batch; throws {@linkcode
 * UnsupportedError} when `dim` exceeds a CPU adapter's loop limit.
 */
export function rmsnorm(
  gpu: Gpu,
  x: GPUBuffer,
  w: GPUBuffer,
  y: GPUBuffer,
  T: number,
  dim: number,
  eps: number,
): void {
  // One invocation walks its row twice: 2 * (dim + 1) loop steps under llvmpipe's loop limit.
  if (gpu.isCpu && 2 * (dim + 1) > CPU_LOOP_LIMIT) {
    throw new UnsupportedError(`rmsnorm: dim ${dim} exceeds this CPU adapter's loop limit`);
  }
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
  // One invocation walks every cached position: pos0 + T + 1 loop steps under llvmpipe's loop limit.
  if (gpu.isCpu && pos0 + T + 1 > CPU_LOOP_LIMIT) {
    throw new UnsupportedError(`attention: context ${pos0 + T} exceeds this CPU adapter's loop limit`);
  }
  // Query tiles share K/V loads: long tiles pay off on CPU adapters (hd 48, T 256 on lavapipe:
  // tq 4 28 ms, tq 8 16 ms, tq 16 12 ms); GPUs keep registers small.
  const tq = T === 1 ? 1 : gpu.isCpu ? (headDim <= 64 ? 16 : 8) : 4;
  const o: AttentionOptions = { headDim, tq, workgroupSize: gpu.isCpu ? 8 : 64 };
  const pipe = gpu.pipeline(attentionKey(o), () => attentionWgsl(o));
  const u = packUniforms([T, nHeads, nKvHeads, pos0, { f32: 1 / Math.sqrt(headDim) }]);
  gpu.dispatch(pipe, [q, k, v, out], u, attentionWorkgroups(o, T, nHeads));
}

/**
 * Per-row NLL (second = targets u32[R]) or KL(P || Q) (second = Q logits) into out f32[R].
 * Rows go in dispatches of whole multiples of 64 rows (256-byte binding offsets) when R x V
 * logits exceed the adapter's binding limit (lavapipe: 128 MiB, 1048 rows of V = 32000).
 * @param maxRowsPerChunk override for tests (forces several dispatches on small inputs).
 */
export function loss(
  gpu: Gpu,
  kind: LossKind,
  p: GPUBuffer,
  second: GPUBuffer,
  out: GPUBuffer,
  R: number,
  V: number,
  maxRowsPerChunk = Infinity,
): void {
  if (gpu.isCpu && V > LOSS_MAX_V) {
    // llvmpipe silently ends an invocation's loops after 65535 steps in all (CPU_LOOP_LIMIT).
    throw new UnsupportedError(
      `loss: a vocabulary of ${V} exceeds this CPU adapter's loop limit (${LOSS_MAX_V})`,
    );
  }
  let per = R;
  if (R * V * 4 > gpu.maxBinding || R > maxRowsPerChunk) {
    per = Math.floor(Math.min(gpu.maxBinding / (V * 4), maxRowsPerChunk) / LOSS_ROW_ALIGN) * LOSS_ROW_ALIGN;
    if (per < LOSS_ROW_ALIGN) {
      throw new UnsupportedError(
        `loss: ${LOSS_ROW_ALIGN} rows of ${V} logits exceed this adapter's ${gpu.maxBinding}-byte binding limit`,
      );
    }
  }
  const pipe = gpu.pipeline(`loss/${kind}`, () => lossWgsl(kind));
  for (let r0 = 0; r0 < R; r0 += per) {
    const n = Math.min(per, R - r0);
    const rows = (buffer: GPUBuffer, width: number): Binding => ({
      buffer,
      offset: r0 * width * 4,
      size: n * width * 4,
    });
    const b = [rows(p, V), rows(second, kind === "kl" ? V : 1), rows(out, 1)];
    gpu.dispatch(pipe, b, packUniforms([n, V]), lossWorkgroups(n));
  }
}

/** Rows per loss chunk are a multiple of this: 64 f32/u32 rows span 256 bytes, the offset alignment. */
const LOSS_ROW_ALIGN = 64;
