/**
 * A weight matrix on the GPU, split transparently into row chunks so that no binding exceeds
 * the adapter's maxStorageBufferBindingSize (128 MiB on lavapipe; one LLaMA-7B embedding table
 * in f32 is 500 MiB). Kernels run once per chunk.
 * @module
 */
import type { GpuDType } from "../../kernels/common.ts";
import { ArgumentError, UnsupportedError } from "../errors.ts";
import type { Gpu } from "./device.ts";

/**
 * One row chunk of a {@linkcode GpuMatrix}: rows `rowStart .. rowStart + rows - 1` in their own buffer.
 *
 * @example A 5-row matrix uploaded at most 2 rows per chunk, and the last chunk's buffer read back
 * ```ts
 * import { Gpu, type MatrixChunk, releaseMatrix, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = Float32Array.from({ length: 5 * 3 }, (_, i) => i); // [5, 3], row r holds 3r, 3r+1, 3r+2
 * const m = uploadMatrix(gpu, w, 5, 3, "w", "f32", 2);
 * assert.deepEqual(m.chunks.map((c: MatrixChunk) => [c.rowStart, c.rows]), [[0, 2], [2, 2], [4, 1]]);
 * const last: MatrixChunk = m.chunks[2];
 * assert.deepEqual([...await gpu.readF32(last.buffer)], [12, 13, 14]); // row 4
 * releaseMatrix(gpu, m);
 * gpu.destroy();
 * ```
 */
export interface MatrixChunk {
  /** The chunk's values, row-major [rows, cols] in the matrix's dtype. */
  buffer: GPUBuffer;
  /** First row of the matrix held by this chunk. */
  rowStart: number;
  /** Rows in this chunk. */
  rows: number;
}

/**
 * A row-major weight matrix on the GPU, split into row chunks that each fit one binding (see {@linkcode
 * uploadMatrix}).
 *
 * @example Wrap a buffer you already have as a one-chunk matrix and multiply with it: y = W x
 * ```ts
 * import { Gpu, type GpuMatrix, linear } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const buffer = gpu.upload(new Float32Array([1, 2, 3, 4, 5, 6]), "w"); // W = [[1, 2, 3], [4, 5, 6]]
 * const w: GpuMatrix = { rows: 2, cols: 3, dtype: "f32", chunks: [{ buffer, rowStart: 0, rows: 2 }] };
 * const x = gpu.upload(new Float32Array([1, 0, -1]), "x");
 * const y = gpu.buffer(w.rows * 4, "y");
 * linear(gpu, x, w, y, 1);
 * assert.deepEqual([...await gpu.readF32(y)], [1 - 3, 4 - 6]);
 * gpu.release(buffer, x, y);
 * gpu.destroy();
 * ```
 */
export interface GpuMatrix {
  /** Total rows. */
  rows: number;
  /** Columns. */
  cols: number;
  /** Storage dtype of the values. */
  dtype: GpuDType;
  /** The row chunks, in row order. */
  chunks: MatrixChunk[];
}

/**
 * Rows per chunk so that a chunk fits one binding (and stays a multiple of 4 bytes).
 *
 * @example How many chunks a 32000 x 4096 f16 embedding table takes on this adapter
 * ```ts
 * import { Gpu, rowsPerChunk } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const rowBytes = 4096 * 2;
 * const per = rowsPerChunk(gpu, 4096, 2);
 * assert.ok(per * rowBytes <= gpu.maxBinding && (per + 1) * rowBytes > gpu.maxBinding); // as many as fit
 * const chunks = Math.ceil(32000 / per); // 2 with 128 MiB bindings (16384 rows each)
 * assert.ok(chunks * per >= 32000 && (chunks - 1) * per < 32000);
 * gpu.destroy();
 * ```
 */
export function rowsPerChunk(gpu: Gpu, cols: number, bytesPerValue: number): number {
  return Math.max(1, Math.floor(gpu.maxBinding / (cols * bytesPerValue)));
}

/**
 * Upload a row-major [rows, cols] f32 matrix as `dtype` (f16 only where the device has it).
 * @param maxRowsPerChunk override for tests (forces chunking on small matrices).
 *
 * @example Upload as f16 where the device has shader-f16: values are rounded to the nearest f16
 * ```ts
 * import { Gpu, readMatrix, releaseMatrix, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const data = new Float32Array([0.1, 0.2, 0.3, 1, 2, 3]);
 * const dtype = gpu.f16 ? "f16" : "f32";
 * const m = uploadMatrix(gpu, data, 2, 3, "w", dtype);
 * assert.deepEqual([m.rows, m.cols, m.dtype, m.chunks.length], [2, 3, dtype, 1]);
 * assert.equal(m.chunks[0].buffer.size, 6 * (dtype === "f16" ? 2 : 4));
 * const round = dtype === "f16" ? Math.f16round : Math.fround;
 * assert.deepEqual([...await readMatrix(gpu, m)], [...data].map(round)); // 0.1 becomes 0.0999755859375
 * releaseMatrix(gpu, m);
 * gpu.destroy();
 * ```
 */
export function uploadMatrix(
  gpu: Gpu,
  data: Float32Array,
  rows: number,
  cols: number,
  label: string,
  dtype: GpuDType = "f32",
  maxRowsPerChunk?: number,
): GpuMatrix {
  if (!(Number.isSafeInteger(rows) && rows >= 0 && Number.isSafeInteger(cols) && cols >= 1)) {
    throw new ArgumentError(
      `uploadMatrix: ${label} needs integer rows >= 0 and cols >= 1, got ${rows}x${cols}`,
    );
  }
  if (data.length !== rows * cols) {
    throw new ArgumentError(
      `uploadMatrix: ${label} is ${rows}x${cols} = ${rows * cols} values but the data holds ${data.length}`,
    );
  }
  if (dtype === "f16" && !gpu.f16) {
    throw new UnsupportedError(
      `uploadMatrix: ${label} as f16 needs shader-f16, which this device lacks; use f32`,
    );
  }
  const bpv = dtype === "f16" ? 2 : 4;
  const per = Math.min(maxRowsPerChunk ?? Infinity, rowsPerChunk(gpu, cols, bpv));
  const chunks: MatrixChunk[] = [];
  for (let r0 = 0; r0 < rows; r0 += per) {
    const n = Math.min(per, rows - r0);
    const slice = data.subarray(r0 * cols, (r0 + n) * cols);
    checkFinite(slice, label, r0, cols);
    const view = dtype === "f16" ? toF16Checked(slice, label, r0, cols) : slice;
    chunks.push({ buffer: gpu.upload(view, `${label}[${r0}:${r0 + n}]`), rowStart: r0, rows: n });
  }
  return { rows, cols, dtype, chunks };
}

/**
 * Refuse NaN and infinite weights at the upload (a corrupt checkpoint), rather than as NaN outputs,
 * or as masks the pruner computed from them, later.
 */
function checkFinite(data: Float32Array, label: string, firstRow: number, cols: number): void {
  let probe = 0;
  for (let i = 0; i < data.length; i++) probe += data[i] * 0; // NaN iff some value is not finite
  if (probe === 0) return;
  const i = data.findIndex((v) => !Number.isFinite(v));
  throw new ArgumentError(
    `${label}: weight [${firstRow + Math.floor(i / cols)}, ${i % cols}] is ${data[i]}; the weights must be ` +
      `finite (is the checkpoint corrupt?)`,
  );
}

/**
 * `data` rounded to f16 (nearest even), refusing values past f16's range (|x| >= 65520 would become
 * infinite, and every output that reads them Inf or NaN): bf16 and f32 checkpoints can hold them.
 */
function toF16Checked(data: Float32Array, label: string, firstRow: number, cols: number): Float16Array {
  const out = new Float16Array(data);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) {
      throw new UnsupportedError(
        `${label}: weight [${firstRow + Math.floor(i / cols)}, ${i % cols}] = ${data[i]} is beyond f16's ` +
          `range (65504); run in f32: set OWLGPU_FORCE_F32=1`,
      );
    }
  }
  return out;
}

/**
 * Release every chunk's buffer and empty `chunks`; `undefined` is a no-op.
 *
 * @example One buffer per chunk is freed
 * ```ts
 * import { Gpu, releaseMatrix, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const m = uploadMatrix(gpu, new Float32Array(6 * 4), 6, 4, "w", "f32", 4); // 2 chunks
 * assert.equal(gpu.liveBuffers, 2);
 * releaseMatrix(gpu, m);
 * assert.equal(gpu.liveBuffers, 0);
 * assert.equal(m.chunks.length, 0);
 * releaseMatrix(gpu, undefined); // a no-op
 * gpu.destroy();
 * ```
 */
export function releaseMatrix(gpu: Gpu, m: GpuMatrix | undefined): void {
  if (!m) return;
  for (const c of m.chunks) gpu.release(c.buffer);
  m.chunks = [];
}

/**
 * Read a matrix back as f32 (tests, exporters).
 *
 * @example A matrix uploaded in 3 chunks comes back whole, in row order
 * ```ts
 * import { Gpu, readMatrix, releaseMatrix, uploadMatrix } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const data = Float32Array.from({ length: 7 * 5 }, (_, i) => i / 4 - 3); // [7, 5]
 * const m = uploadMatrix(gpu, data, 7, 5, "w", "f32", 3);
 * assert.equal(m.chunks.length, 3);
 * assert.deepEqual(await readMatrix(gpu, m), data);
 * releaseMatrix(gpu, m);
 * gpu.destroy();
 * ```
 */
export async function readMatrix(gpu: Gpu, m: GpuMatrix): Promise<Float32Array> {
  const out = new Float32Array(m.rows * m.cols);
  for (const c of m.chunks) {
    const bytes = await gpu.read(c.buffer, 0, c.rows * m.cols * (m.dtype === "f16" ? 2 : 4));
    const values = m.dtype === "f32" ? new Float32Array(bytes) : new Float16Array(bytes);
    out.set(values, c.rowStart * m.cols);
  }
  return out;
}
