/**
 * Dense suite: buffer-copy baseline, then GEMV (batch 1) and GEMM throughput for stories15M's
 * and LLaMA-7B's linear shapes, f32 and f16 weights, each as a fraction of the copy bandwidth.
 * Bandwidth counts bytes read + bytes written (a copy of B bytes moves 2B).
 *
 * On CPU adapters the GEMV shapes also get `gemv-tex` rows (src/ops/gemv_tex.ts: W resident in
 * textures, X in a uniform slot; shape `NxK tex`): the faster dense GEMV there. Every row also
 * carries `ofMemcpy`, its GB/s over copyBufferToBuffer's read + write GB/s (one-way: twice that);
 * the `tex` rows print it in their shape (`b2b`).
 * @module
 */
import { packUniforms } from "../kernels/common.ts";
import { COPY_WG, copyWgsl } from "../kernels/copy.ts";
import type { GpuDType } from "../kernels/common.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { releaseMatrix, uploadMatrix } from "../src/gpu/matrix.ts";
import { linear } from "../src/ops/linear.ts";
import { gemvTex, gemvTexSupported, releaseGemvTex, uploadGemvTex } from "../src/ops/gemv_tex.ts";
import { timeKernel, type Timing } from "./timing.ts";

export interface DenseRow {
  kind: "copy" | "gemv" | "gemm";
  shape: string;
  dtype: GpuDType | "-";
  ms: number;
  timing: Timing["source"];
  gbps: number;
  gflops: number;
  /** gbps / copy bandwidth. */
  ofCopy: number;
  /** gbps / copyBufferToBuffer's (read + write) bandwidth. */
  ofMemcpy?: number;
}

/** Copy bandwidth in GB/s (max of copyBufferToBuffer and a copy shader). */
export async function benchCopy(gpu: Gpu, bytes: number): Promise<DenseRow[]> {
  const src = gpu.buffer(bytes, "copy-src"), dst = gpu.buffer(bytes, "copy-dst");
  const rows: DenseRow[] = [];
  try {
    gpu.write(src, new Float32Array(bytes / 4).fill(1)); // untouched pages would read as a shared zero page
    // Timed like the kernels: timedPass brackets the copy with timestamped empty passes. (Wall time
    // would add lavapipe's ~11 ms submit-and-wait latency: 16.5-17.7 ms against 4.8-6.0 for 64 MiB.)
    const t1 = await timeKernel(gpu, () => gpu.copy(src, 0, dst, 0, bytes), { reps: 9 });
    const per = gpu.isCpu ? 64 : 1;
    const pipe = gpu.pipeline(`copy/p${per}`, () => copyWgsl(per));
    const n = bytes / 16;
    const t2 = await timeKernel(
      gpu,
      () => gpu.dispatch(pipe, [src, dst], packUniforms([n]), Math.ceil(n / (COPY_WG * per))),
    );
    for (const [name, t] of [["copyBufferToBuffer", t1], ["copy shader", t2]] as const) {
      const gbps = (2 * bytes) / (t.ms * 1e6);
      rows.push({
        kind: "copy",
        shape: `${name} ${(bytes / 2 ** 20).toFixed(0)} MiB`,
        dtype: "-",
        ms: t.ms,
        timing: t.source,
        gbps,
        gflops: 0,
        ofCopy: 0,
      });
    }
  } finally {
    gpu.release(src, dst);
  }
  return rows;
}

/** One linear product: M tokens through an N x K weight. */
export async function benchLinear(
  gpu: Gpu,
  M: number,
  N: number,
  K: number,
  dtype: GpuDType,
  reps: number,
): Promise<DenseRow> {
  const w = uploadMatrix(gpu, new Float32Array(N * K).fill(0.01), N, K, "w", dtype); // real pages, not zero pages
  const x = gpu.upload(new Float32Array(M * K).fill(1), "x"), y = gpu.buffer(M * N * 4, "y");
  try {
    const t = await timeKernel(gpu, () => linear(gpu, x, w, y, M), { reps });
    const bytes = N * K * (dtype === "f16" ? 2 : 4) + (M * K + M * N) * 4;
    return {
      kind: M === 1 ? "gemv" : "gemm",
      shape: M === 1 ? `${N}x${K}` : `${M}x${N}x${K}`,
      dtype,
      ms: t.ms,
      timing: t.source,
      gbps: bytes / (t.ms * 1e6),
      gflops: (2 * M * N * K) / (t.ms * 1e6),
      ofCopy: 0,
    };
  } finally {
    releaseMatrix(gpu, w);
    gpu.release(x, y);
  }
}

/** The texture GEMV (CPU adapters, K <= 16384): W uploaded once into textures, timed per call. */
export async function benchGemvTex(
  gpu: Gpu,
  N: number,
  K: number,
  dtype: GpuDType,
  reps: number,
): Promise<DenseRow> {
  const w = uploadGemvTex(gpu, new Float32Array(N * K).fill(0.01), N, K, { dtype });
  const x = gpu.upload(new Float32Array(K).fill(1), "x"), y = gpu.buffer(N * 4, "y");
  try {
    const t = await timeKernel(gpu, () => gemvTex(gpu, x, w, y, 1), { reps });
    const bytes = N * K * (dtype === "f16" ? 2 : 4) + (K + N) * 4;
    return {
      kind: "gemv",
      shape: `${N}x${K} tex`,
      dtype,
      ms: t.ms,
      timing: t.source,
      gbps: bytes / (t.ms * 1e6),
      gflops: (2 * N * K) / (t.ms * 1e6),
      ofCopy: 0,
    };
  } finally {
    releaseGemvTex(gpu, w);
    gpu.release(x, y);
  }
}

export const STORIES_SHAPES: [number, number][] = [[288, 288], [768, 288], [288, 768], [32000, 288]];
export const LLAMA7B_SHAPES: [number, number][] = [[4096, 4096], [11008, 4096], [4096, 11008]];

export async function benchDense(gpu: Gpu, opts: { quick?: boolean } = {}): Promise<DenseRow[]> {
  const copyBytes = gpu.isCpu ? 64 * 2 ** 20 : 512 * 2 ** 20;
  const rows = await benchCopy(gpu, copyBytes);
  // Kernels are compared with the faster copy, the physical limit as measured: on GPUs usually the
  // copy shader; on CPU adapters copyBufferToBuffer (a memcpy, 10x lavapipe's storage-buffer copy
  // shader, and what the texture GEMV's storage-texture reads approach).
  const copyBw = Math.max(rows[0].gbps, rows[1].gbps);
  const dtypes: GpuDType[] = gpu.f16 ? ["f32", "f16"] : ["f32"];
  const gemmM = gpu.isCpu ? 64 : 512;
  const shapes = opts.quick ? [[11008, 4096]] as [number, number][] : [...STORIES_SHAPES, ...LLAMA7B_SHAPES];
  for (const dtype of dtypes) {
    for (const [N, K] of shapes) {
      rows.push(await benchLinear(gpu, 1, N, K, dtype, 7));
      if (gpu.isCpu && gemvTexSupported(K)) rows.push(await benchGemvTex(gpu, N, K, dtype, 7));
    }
  }
  for (const dtype of dtypes) {
    for (const [N, K] of shapes) {
      // GEMMs of LLaMA-7B shapes take seconds on CPU adapters: fewer repetitions there.
      rows.push(await benchLinear(gpu, gemmM, N, K, dtype, gpu.isCpu && N * K > 1e7 ? 2 : 5));
    }
  }
  for (const r of rows) {
    r.ofCopy = r.gbps / copyBw;
    r.ofMemcpy = r.gbps / rows[0].gbps;
    if (r.shape.endsWith(" tex")) r.shape += ` ${(100 * r.ofMemcpy).toFixed(0)}% b2b`;
  }
  return rows;
}
