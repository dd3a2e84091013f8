/**
 * Sparse weights on the GPU: the host formats of format.ts rearranged into the layouts the sparse
 * kernels read (kernels/sparse_linear.ts has the exact word layout), split into row chunks so
 * that no binding exceeds the adapter's maxStorageBufferBindingSize.
 *
 * - unstructured: per chunk a `ptr` buffer (u32 [rows + 1], group offsets, relative to the chunk)
 *   and a `data` buffer of groups: f32 values in groups of 8 nonzeros (12 words: 8 values, then 4
 *   words of two u16 columns each, low half first), f16 values in groups of 4 (4 words, each
 *   `column | f16 bits << 16`). Each row's last group is padded with value 0 and the row's last
 *   column, so columns never decrease along a row (the segmented kernels binary-search them).
 *   Columns are u16: at most 65536 columns.
 * - nm: per chunk an `idx` buffer (u32 [rows, idxStride], positions packed as in the host format)
 *   and a `data` buffer of values (`idxStride * 32 / bits` per row: f32, or f16 pairs in u32),
 *   padded with zeros.
 *
 * - unstructured, `delta` layout (the default): columns in
 *   blocks of SPARSE_DELTA_BLOCK (4096); per chunk a `ptr` buffer (u32 [rows * blocks + 1]: entry
 *   r * blocks + b is the first group of block b of row r, relative to the chunk, the next entry
 *   its end) and groups of entries, each a value and a column delta of `deltaBits` bits: 8-bit
 *   deltas in groups of 16 (f32 5 texels: 16 value words, then 4 words of 4 deltas, lowest byte
 *   first; f16 3 texels: 8 words of two f16, low half first, then the 4 delta words), 4-bit
 *   deltas in groups of 32 (f32 9 texels, f16 5: the values, then 4 words of 8 nibbles, lowest
 *   first). A block's running column starts at the block's first column; each entry adds its
 *   delta (the first may be 0). A gap over the largest delta (255 or 15) takes escape entries
 *   (that delta, value 0); a block's last group is padded with delta 0, value 0. So an entry's
 *   column is always a real column of the block, and 5 / 3 bytes (8-bit) or 4.5 / 2.5 bytes
 *   (4-bit) carry a kept f32 / f16 weight instead of the groups' 6 / 4; no column limit. By
 *   default each matrix takes the width that gives it fewer bytes (4-bit up to ~80% sparsity,
 *   where escapes are rare). With `starts` (the default on GPUs) the `ptr` buffer also holds,
 *   after its offsets, each group's start column (a u32 a group: the running column before the
 *   group's first entry), so the wg version's lanes can each decode a group on their own.
 *
 * With `texture` (the default on lavapipe, `gpu.cpu.weightTextures`) the `data` words go into an
 * rgba32uint texture (bound as a read-only storage texture) instead of a storage buffer (flat
 * layout, SPARSE_TEX_WIDTH texels a row, zero-padded to a whole row), uploaded once: lavapipe
 * fetches a texel per lane with one 16-byte load, a storage vec4 with a per-component loop. Row
 * offsets and N:M index words stay in storage buffers.
 * @module
 */
import type { GpuDType } from "../../kernels/common.ts";
import {
  deltaGroupEntries,
  deltaGroupTexels,
  SPARSE_DELTA_BLOCK,
  SPARSE_GROUP,
  SPARSE_TEX_WIDTH,
  type SparseGpuLayout,
} from "../../kernels/sparse_linear.ts";
import { ArgumentError, UnsupportedError } from "../errors.ts";
import type { Gpu } from "../gpu/device.ts";
import {
  checkSparseMatrix,
  nmGroups,
  nmIndexBits,
  nmIndexBytesPerRow,
  type SparseMatrix,
  unstructuredRowColumns,
  type UnstructuredSparse,
} from "./format.ts";

/**
 * One row chunk of a {@linkcode GpuSparseMatrix}, in the sparse kernels' layout (kernels/sparse_linear.ts).
 *
 * @example A 5-row weight uploaded in chunks of at most 2 rows
 * ```ts
 * import { Gpu, type GpuSparseChunk, packUnstructured, releaseSparse, uploadSparse } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const N = 5, K = 6;
 * const W = new Float32Array(N * K).map((_, i) => (i % 4 === 0 ? i : 0));
 * const opts = { maxRowsPerChunk: 2, texture: false, layout: "groups" } as const;
 * const w = uploadSparse(gpu, packUnstructured(W, N, K), opts);
 * const chunks: GpuSparseChunk[] = w.chunks;
 * assert.deepEqual(chunks.map((c) => [c.rowStart, c.rows]), [[0, 2], [2, 2], [4, 1]]);
 * for (const c of chunks) {
 *   // Unstructured: group offsets of the chunk's rows (from 0) and the groups; no N:M index words.
 *   assert.ok(c.ptr && c.data && !c.idx && !c.tex);
 *   const ptr = await gpu.readU32(c.ptr);
 *   assert.equal(ptr.length, c.rows + 1);
 *   assert.equal(ptr[0], 0);
 * }
 * releaseSparse(gpu, w);
 * gpu.destroy();
 * ```
 */
export interface GpuSparseChunk {
  /** First weight row of the chunk. */
  rowStart: number;
  /** Weight rows in the chunk. */
  rows: number;
  /** unstructured: u32 [rows + 1] group offsets; nm: null. */
  ptr: GPUBuffer | null;
  /** unstructured: the groups; nm: the values (null when they live in `tex`). */
  data: GPUBuffer | null;
  /** The same words in an rgba32uint texture (flat layout, SPARSE_TEX_WIDTH texels a row), or null. */
  tex: GPUTexture | null;
  /** The view of `tex` bound to the kernel, or null. */
  texView: GPUTextureView | null;
  /** nm: u32 [rows, idxStride] packed positions; unstructured: null. */
  idx: GPUBuffer | null;
}

/**
 * A sparse weight on the GPU in the sparse kernels' layout, in row chunks that each fit one binding (see
 * {@linkcode uploadSparse}).
 *
 * @example A 2:4 weight on the GPU, multiplied by a vector
 * ```ts
 * import {
 *   Gpu, type GpuSparseMatrix, packNM, releaseSparse, sparseLinear, uploadSparse,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * // 2:4 sparsity: 2 of every 4 columns kept.
 * const W = new Float32Array([1, 0, 2, 0, 0, 3, 0, 4, 0, 0, 5, 6, 7, 8, 0, 0]); // [2, 8]
 * const m: GpuSparseMatrix = uploadSparse(gpu, packNM(W, 2, 8, 2, 4), { texture: false });
 * assert.deepEqual([m.format, m.rows, m.cols, m.keep, m.group], ["nm", 2, 8, 2, 4]);
 * assert.equal(m.idxStride, 1); // 4 kept positions a row, 2 bits each: one u32 word
 * const x = gpu.upload(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]), "x"), y = gpu.buffer(2 * 4, "y");
 * sparseLinear(gpu, x, m, y, 1);
 * assert.deepEqual(await gpu.readF32(y), new Float32Array([1 + 6 + 18 + 32, 15 + 24 + 35 + 48]));
 * releaseSparse(gpu, m);
 * gpu.release(x, y);
 * gpu.destroy();
 * ```
 */
export interface GpuSparseMatrix {
  /** Sparse format. */
  format: "unstructured" | "nm";
  /** Weight rows. */
  rows: number;
  /** Weight columns. */
  cols: number;
  /** Value dtype on the GPU. */
  dtype: GpuDType;
  /** nm only (0 otherwise): kept per group, group length, u32 index words per row. */
  keep: number;
  /** nm only: group length. */
  group: number;
  /** nm only: u32 index words per row. */
  idxStride: number;
  /** Groups / values live in textures (lavapipe: a texel fetch is one 16-byte load per lane). */
  texture: boolean;
  /** Unstructured layout ("groups" for nm). */
  layout: SparseGpuLayout;
  /** delta layout: column blocks per row (0 otherwise). */
  blocks: number;
  /** delta layout: bits of a column delta, 4 or 8 (0 otherwise). */
  deltaBits: 0 | 4 | 8;
  /**
   * delta layout: each chunk's `ptr` buffer also holds every group's start column (the running
   * column before its first entry, a u32 a group after the `rows * blocks + 1` offsets), so the
   * wg version's lanes can each take a group (false otherwise).
   */
  starts: boolean;
  /** The row chunks, in row order. */
  chunks: GpuSparseChunk[];
  /** Bytes of every buffer of this matrix. */
  bytes: number;
}

/**
 * Options of {@linkcode uploadSparse}.
 *
 * @example CSR groups in storage buffers, in chunks of 2 rows
 * ```ts
 * import {
 *   ArgumentError, Gpu, packUnstructured, releaseSparse, uploadSparse, type UploadSparseOptions,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const s = packUnstructured(new Float32Array([0, 1, 0, 2, 3, 0, 0, 0, 0, 0, 4, 0]), 3, 4);
 * // CSR groups in storage buffers (every kernel version reads them), at most 2 rows a chunk.
 * const opts: UploadSparseOptions = { label: "w", maxRowsPerChunk: 2, texture: false, layout: "groups" };
 * const w = uploadSparse(gpu, s, opts);
 * assert.deepEqual([w.chunks.length, w.texture, w.layout, w.dtype], [2, false, "groups", "f32"]);
 * // Unknown delta widths are refused:
 * assert.throws(() => uploadSparse(gpu, s, { ...opts, layout: "delta", deltaBits: 6 as 4 }), ArgumentError);
 * releaseSparse(gpu, w);
 * gpu.destroy();
 * ```
 */
export interface UploadSparseOptions {
  /** Value dtype on the GPU (default: the matrix's); f16 needs `gpu.f16`. */
  dtype?: GpuDType;
  /** Label of the buffers (debugging). */
  label?: string;
  /** At most this many rows per chunk (tests use it to force chunking on small matrices). */
  maxRowsPerChunk?: number;
  /** Keep groups / values in textures (default: `gpu.cpu.weightTextures`, i.e. on lavapipe). */
  texture?: boolean;
  /**
   * Unstructured layout: "delta" (column deltas, fewer bytes a kept weight) or "groups" (CSR
   * groups with u16 columns, up to SPARSE_MAX_COLS). Default: the CPU adapter's `cpu.sparseLayout`
   * (SwiftShader: groups) where the columns fit, else delta.
   */
  layout?: SparseGpuLayout;
  /**
   * delta layout: also store each group's start column, which the wg version (the GPU GEMV)
   * needs: 4 bytes a group of 16 or 32 entries. Default: on GPUs, not on CPU adapters (whose
   * lane versions walk each row from its start).
   */
  starts?: boolean;
  /**
   * delta layout: bits of a column delta, 4 or 8. Default: whichever gives this matrix fewer bytes
   * (4-bit deltas escape every 15 columns, 8-bit every 255).
   */
  deltaBits?: 4 | 8;
}

/**
 * Largest column count of the unstructured GPU layout (u16 columns).
 *
 * @example Past SPARSE_MAX_COLS columns, only the delta layout uploads
 * ```ts
 * import {
 *   Gpu, packUnstructured, releaseSparse, SPARSE_MAX_COLS, sparseLinear, UnsupportedError, uploadSparse,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const K = SPARSE_MAX_COLS + 1;
 * const W = new Float32Array(K);
 * W[0] = 1;
 * W[K - 1] = 2;
 * const s = packUnstructured(W, 1, K);
 * // The CSR groups store u16 columns: one column more is refused...
 * assert.throws(() => uploadSparse(gpu, s, { texture: false, layout: "groups" }), UnsupportedError);
 * // ...while the delta layout (column deltas within 4096-column blocks) has no column limit.
 * const w = uploadSparse(gpu, s, { texture: true, layout: "delta" });
 * const x = gpu.upload(new Float32Array(K).fill(1), "x"), y = gpu.buffer(4, "y");
 * sparseLinear(gpu, x, w, y, 1);
 * assert.deepEqual(await gpu.readF32(y), new Float32Array([3]));
 * releaseSparse(gpu, w);
 * gpu.release(x, y);
 * gpu.destroy();
 * ```
 */
export const SPARSE_MAX_COLS = 65536;

/** Words per group of the unstructured layout. */
export function groupWords(dtype: GpuDType): number {
  return dtype === "f32" ? 12 : 4;
}

/** Split rows [0, rows) greedily into chunks of at most `maxBytes` (rowBytes(r) each) and `maxRows` rows. */
function planChunks(rows: number, rowBytes: (r: number) => number, maxBytes: number, maxRows: number) {
  const out: [number, number][] = [];
  let r0 = 0, bytes = 0;
  for (let r = 0; r < rows; r++) {
    const b = rowBytes(r);
    if (b > maxBytes) {
      throw new UnsupportedError(
        `one sparse row needs ${b} bytes, over this adapter's binding limit ${maxBytes}`,
      );
    }
    if (r > r0 && (bytes + b > maxBytes || r - r0 >= maxRows)) {
      out.push([r0, r]);
      r0 = r;
      bytes = 0;
    }
    bytes += b;
  }
  if (rows > r0 || rows === 0) out.push([r0, rows]);
  return out;
}

/** Upload `words` as a storage buffer, or as an rgba32uint texture in the flat layout. */
function placeWords(
  gpu: Gpu,
  words: ArrayBufferView,
  label: string,
  texture: boolean,
): { data: GPUBuffer | null; tex: GPUTexture | null; texView: GPUTextureView | null; bytes: number } {
  if (!texture) return { data: gpu.upload(words, label), tex: null, texView: null, bytes: words.byteLength };
  const rowBytes = SPARSE_TEX_WIDTH * 16;
  const rows = Math.max(1, Math.ceil(words.byteLength / rowBytes));
  if (rows > gpu.device.limits.maxTextureDimension2D) {
    throw new UnsupportedError(`${label}: ${words.byteLength} bytes do not fit one texture on this adapter`);
  }
  const padded = new Uint8Array(rows * rowBytes);
  padded.set(new Uint8Array(words.buffer, words.byteOffset, words.byteLength));
  const tex = gpu.device.createTexture({
    label,
    size: [SPARSE_TEX_WIDTH, rows],
    format: "rgba32uint",
    usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
  });
  gpu.flush(); // like Gpu.write: never overtake recorded work
  gpu.device.queue.writeTexture({ texture: tex }, padded, { bytesPerRow: rowBytes }, [
    SPARSE_TEX_WIDTH,
    rows,
  ]);
  return { data: null, tex, texView: tex.createView(), bytes: padded.byteLength };
}

/**
 * The chunk of rows [r0, r1): its weight words placed (placeWords) and its row offsets (`ptr`:
 * unstructured) or N:M index words (`idx`) uploaded; `bytes` counts both.
 */
function placeChunk(
  gpu: Gpu,
  label: string,
  r0: number,
  r1: number,
  words: ArrayBufferView,
  texture: boolean,
  index: { ptr: Uint32Array } | { idx: Uint8Array },
): { chunk: GpuSparseChunk; bytes: number } {
  const nm = "idx" in index;
  const placed = placeWords(gpu, words, `${label}.${nm ? "values" : "data"}[${r0}:${r1}]`, texture);
  const indexWords = nm ? index.idx : index.ptr;
  const buf = gpu.upload(indexWords, `${label}.${nm ? "idx" : "ptr"}[${r0}:${r1}]`);
  return {
    chunk: {
      rowStart: r0,
      rows: r1 - r0,
      ptr: nm ? null : buf,
      data: placed.data,
      tex: placed.tex,
      texView: placed.texView,
      idx: nm ? buf : null,
    },
    bytes: indexWords.byteLength + placed.bytes,
  };
}

function toF32(v: Float32Array | Float16Array): Float32Array {
  return v instanceof Float32Array ? v : Float32Array.from(v);
}

function toF16Bits(v: Float32Array | Float16Array): Uint16Array {
  const h = v instanceof Float16Array ? v : Float16Array.from(v);
  return new Uint16Array(h.buffer, h.byteOffset, h.length);
}

/** Most bytes of one chunk's weight words: the binding limit, and in a texture its capacity. */
function chunkBytes(gpu: Gpu, texture: boolean): number {
  const tex = SPARSE_TEX_WIDTH * 16 * gpu.device.limits.maxTextureDimension2D;
  return texture ? Math.min(gpu.maxBinding, tex) : gpu.maxBinding;
}

/** Words per group of the delta layout with `bits`-bit deltas. */
export function deltaGroupWords(dtype: GpuDType, bits: 4 | 8 = 8): number {
  return deltaGroupTexels(dtype, bits) * 4;
}

/**
 * Columns of row r's kept values into `cols` (from the bitmap), checked against the row's value
 * count; returns that count.
 */
function checkedRowColumns(s: UnstructuredSparse, r: number, cols: Uint32Array, label: string): number {
  const n = unstructuredRowColumns(s, r, cols);
  const values = s.rowOffsets[r + 1] - s.rowOffsets[r];
  if (n !== values) throw new ArgumentError(`${label}: row ${r} has ${n} bitmap bits but ${values} values`);
  return n;
}

/**
 * The delta-layout entries of a row whose kept columns are `cols[0..n)`, in order: `visit(block,
 * delta, k)` for each, `k` the index of the entry's value in the row, or -1 for an escape (delta
 * `maxd`, value 0) bridging a gap over `maxd`. A block's running column starts at its first column.
 */
function forEachDeltaEntry(
  cols: Uint32Array,
  n: number,
  maxd: number,
  visit: (block: number, delta: number, k: number) => void,
): void {
  let block = -1, prev = 0;
  for (let k = 0; k < n; k++) {
    const c = cols[k], b = Math.floor(c / SPARSE_DELTA_BLOCK);
    if (b !== block) [block, prev] = [b, b * SPARSE_DELTA_BLOCK];
    for (; c - prev > maxd; prev += maxd) visit(b, maxd, -1);
    visit(b, c - prev, k);
    prev = c;
  }
}

/**
 * Groups of every (row, block) of the delta layout for each delta width in `widths`, escapes
 * included (in that order); each row's columns are decoded from the bitmap once for all widths.
 */
function deltaGroupCounts(
  s: UnstructuredSparse,
  nb: number,
  widths: (4 | 8)[],
  label: string,
): Uint32Array[] {
  const cols = new Uint32Array(s.cols), entries = new Uint32Array(nb);
  const counts = widths.map(() => new Uint32Array(s.rows * nb));
  for (let r = 0; r < s.rows; r++) {
    const n = checkedRowColumns(s, r, cols, label);
    widths.forEach((bits, i) => {
      const G = deltaGroupEntries(bits);
      entries.fill(0);
      forEachDeltaEntry(cols, n, (1 << bits) - 1, (b) => entries[b]++);
      for (let b = 0; b < nb; b++) counts[i][r * nb + b] = Math.ceil(entries[b] / G);
    });
  }
  return counts;
}

function uploadDelta(
  gpu: Gpu,
  s: UnstructuredSparse,
  dtype: GpuDType,
  label: string,
  maxRows: number,
  forceBits: 4 | 8 | undefined,
  texture: boolean,
  starts: boolean,
): { chunks: GpuSparseChunk[]; bytes: number; blocks: number; bits: 4 | 8 } {
  const nb = Math.max(1, Math.ceil(s.cols / SPARSE_DELTA_BLOCK));
  // Pass 1: groups of every (row, block) for each width; take the smaller layout (or the forced one).
  const sum = (a: Uint32Array) => a.reduce((t, v) => t + v, 0);
  let bits: 4 | 8, ng: Uint32Array;
  if (forceBits) {
    bits = forceBits;
    [ng] = deltaGroupCounts(s, nb, [bits], label);
  } else {
    const [n4, n8] = deltaGroupCounts(s, nb, [4, 8], label);
    const use4 = sum(n4) * deltaGroupWords(dtype, 4) <= sum(n8) * deltaGroupWords(dtype, 8);
    [bits, ng] = use4 ? [4, n4] : [8, n8];
  }
  const G = deltaGroupEntries(bits), gw = deltaGroupWords(dtype, bits), maxd = (1 << bits) - 1;
  const per = 32 / bits; // deltas per word
  const f32 = dtype === "f32" ? toF32(s.values) : null;
  const f16 = dtype === "f16" ? toF16Bits(s.values) : null;
  const cols = new Uint32Array(s.cols);
  const rowGroups = (r: number) => {
    let g = 0;
    for (let b = 0; b < nb; b++) g += ng[r * nb + b];
    return g;
  };
  // With `starts`, the ptr buffer also holds each group's start column (a word per group).
  const rowBytes = (r: number) => rowGroups(r) * (gw + (starts ? 1 : 0)) * 4 + nb * 4;
  const plan = planChunks(s.rows, rowBytes, chunkBytes(gpu, texture), maxRows);
  const chunks: GpuSparseChunk[] = [];
  let bytes = 0;
  for (const [r0, r1] of plan) {
    const np = (r1 - r0) * nb + 1;
    const offsets = new Uint32Array(np);
    for (let i = 0; i < np - 1; i++) offsets[i + 1] = offsets[i] + ng[r0 * nb + i];
    const groups = offsets[np - 1];
    const ptr = starts ? new Uint32Array(np + groups) : offsets;
    if (starts) ptr.set(offsets);
    const data = new Uint32Array(Math.max(4, groups * gw));
    const dval = dtype === "f32" ? G : G / 2; // first delta word of a group
    for (let r = r0; r < r1; r++) {
      const v0 = s.rowOffsets[r];
      let block = -1, q = 0, col = 0; // q: entry index within the chunk; col: the running column
      forEachDeltaEntry(cols, checkedRowColumns(s, r, cols, label), maxd, (b, d, k) => {
        if (b !== block) [block, q, col] = [b, offsets[(r - r0) * nb + b] * G, b * SPARSE_DELTA_BLOCK];
        const v = k < 0 ? 0 : f32 ? f32Bits(f32[v0 + k]) : f16![v0 + k];
        const base = Math.floor(q / G) * gw, e = q % G;
        if (starts && e === 0) ptr[np + q / G] = col; // the column before the group's first entry
        if (f32) data[base + e] = v;
        else data[base + (e >> 1)] |= v << (16 * (e & 1));
        data[base + dval + Math.floor(e / per)] |= d << (bits * (e % per));
        col += d;
        q++;
      });
      // The rest of each block's last group stays zero: delta 0, value 0.
    }
    const placed = placeChunk(gpu, label, r0, r1, data, texture, { ptr });
    chunks.push(placed.chunk);
    bytes += placed.bytes;
  }
  return { chunks, bytes, blocks: nb, bits };
}

const f32View = new Float32Array(1);
const u32View = new Uint32Array(f32View.buffer);
function f32Bits(v: number): number {
  f32View[0] = v;
  return u32View[0];
}

function uploadUnstructured(
  gpu: Gpu,
  s: UnstructuredSparse,
  dtype: GpuDType,
  label: string,
  maxRows: number,
  texture: boolean,
): { chunks: GpuSparseChunk[]; bytes: number } {
  if (s.cols > SPARSE_MAX_COLS) {
    throw new UnsupportedError(
      `${label}: ${s.cols} columns; the unstructured GPU layout stores u16 columns (at most ${SPARSE_MAX_COLS})`,
    );
  }
  const G = SPARSE_GROUP[dtype], gw = groupWords(dtype);
  const groupsOf = (r: number) => Math.ceil((s.rowOffsets[r + 1] - s.rowOffsets[r]) / G);
  const plan = planChunks(s.rows, (r) => groupsOf(r) * gw * 4 + 4, chunkBytes(gpu, texture), maxRows);
  const f32 = dtype === "f32" ? toF32(s.values) : null;
  const f16 = dtype === "f16" ? toF16Bits(s.values) : null;
  const cols = new Uint32Array(s.cols);
  const chunks: GpuSparseChunk[] = [];
  let bytes = 0;
  for (const [r0, r1] of plan) {
    const ptr = new Uint32Array(r1 - r0 + 1);
    for (let r = r0; r < r1; r++) ptr[r - r0 + 1] = ptr[r - r0] + groupsOf(r);
    const data = new Uint32Array(Math.max(4, ptr[r1 - r0] * gw));
    const dataF = new Float32Array(data.buffer);
    for (let r = r0; r < r1; r++) {
      const n = checkedRowColumns(s, r, cols, label), v0 = s.rowOffsets[r];
      const last = n > 0 ? cols[n - 1] : 0;
      const g0 = ptr[r - r0], ng = ptr[r - r0 + 1] - g0;
      for (let g = 0; g < ng; g++) {
        const base = (g0 + g) * gw;
        for (let q = 0; q < G; q++) {
          const e = g * G + q;
          const col = e < n ? cols[e] : last;
          if (f32) {
            dataF[base + q] = e < n ? f32[v0 + e] : 0;
            data[base + 8 + (q >> 1)] |= col << (16 * (q & 1));
          } else {
            data[base + q] = (col | ((e < n ? f16![v0 + e] : 0) << 16)) >>> 0;
          }
        }
      }
    }
    const placed = placeChunk(gpu, label, r0, r1, data, texture, { ptr });
    chunks.push(placed.chunk);
    bytes += placed.bytes;
  }
  return { chunks, bytes };
}

/** u32 index words per row of the nm GPU layout. */
export function nmIdxStride(cols: number, keep: number, group: number): number {
  return Math.ceil(nmGroups(cols, group) * keep * nmIndexBits(group) / 32);
}

function uploadNM(
  gpu: Gpu,
  s: Extract<SparseMatrix, { format: "nm" }>,
  dtype: GpuDType,
  label: string,
  maxRows: number,
  texture: boolean,
): { chunks: GpuSparseChunk[]; bytes: number; idxStride: number } {
  const bits = nmIndexBits(s.group), vpw = 32 / bits;
  const perRow = nmGroups(s.cols, s.group) * s.keep;
  const idxStride = nmIdxStride(s.cols, s.keep, s.group);
  const idxBytes = nmIndexBytesPerRow(s.cols, s.keep, s.group);
  const vb = dtype === "f32" ? 4 : 2;
  const rowBytes = idxStride * 4 + idxStride * vpw * vb;
  const plan = planChunks(s.rows, () => rowBytes, chunkBytes(gpu, texture), maxRows);
  const f32 = dtype === "f32" ? toF32(s.values) : null;
  const f16 = dtype === "f16" ? toF16Bits(s.values) : null;
  const chunks: GpuSparseChunk[] = [];
  let bytes = 0;
  for (const [r0, r1] of plan) {
    const n = r1 - r0;
    const idxB = new Uint8Array(Math.max(4, n * idxStride * 4));
    for (let r = r0; r < r1; r++) {
      idxB.set(s.indices.subarray(r * idxBytes, (r + 1) * idxBytes), (r - r0) * idxStride * 4);
    }
    const stride = idxStride * vpw;
    let data: Float32Array | Uint16Array;
    if (f32) {
      data = new Float32Array(Math.max(1, n * stride));
      for (let r = r0; r < r1; r++) data.set(f32.subarray(r * perRow, (r + 1) * perRow), (r - r0) * stride);
    } else {
      data = new Uint16Array(Math.max(2, n * stride));
      for (let r = r0; r < r1; r++) data.set(f16!.subarray(r * perRow, (r + 1) * perRow), (r - r0) * stride);
    }
    const placed = placeChunk(gpu, label, r0, r1, data, texture, { idx: idxB });
    chunks.push(placed.chunk);
    bytes += placed.bytes;
  }
  return { chunks, bytes, idxStride };
}

/**
 * Upload a sparse matrix in the layout of the sparse kernels (see the module doc), in row chunks
 * under the binding limit. Release with {@linkcode releaseSparse}.
 *
 * @example Upload a pruned weight and compute y = W x
 * ```ts
 * import { Gpu, packUnstructured, releaseSparse, sparseLinear, uploadSparse } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const W = new Float32Array([0, 1.5, 0, 0, -2, 0, 0, 0, 0, 0, 0, 4]); // [3, 4], 75% zeros
 * const w = uploadSparse(gpu, packUnstructured(W, 3, 4), { label: "w" });
 * // Column deltas in textures on lavapipe; CSR groups in storage on SwiftShader (gpu.cpu, measured);
 * // column deltas in storage with each group's start column on GPUs.
 * assert.equal(w.layout, gpu.cpu?.sparseLayout ?? "delta");
 * assert.equal(w.texture, gpu.cpu?.weightTextures ?? false);
 * assert.equal(w.starts, !gpu.isCpu);
 * const x = gpu.upload(new Float32Array([1, 2, 3, 4]), "x"), y = gpu.buffer(3 * 4, "y");
 * sparseLinear(gpu, x, w, y, 1);
 * assert.deepEqual(await gpu.readF32(y), new Float32Array([1.5 * 2, -2 * 1, 4 * 4]));
 * releaseSparse(gpu, w);
 * gpu.release(x, y);
 * gpu.destroy();
 * ```
 */
export function uploadSparse(gpu: Gpu, s: SparseMatrix, opts: UploadSparseOptions = {}): GpuSparseMatrix {
  const label = opts.label ?? "sparse";
  checkSparseMatrix(s, `uploadSparse(${label})`);
  if (s.rows === 0 || s.cols === 0) {
    throw new ArgumentError(`uploadSparse(${label}): the ${s.rows}x${s.cols} matrix is empty`);
  }
  const dtype = opts.dtype ?? s.dtype;
  if (dtype === "f16" && !gpu.f16) {
    throw new UnsupportedError(
      `${label}: f16 sparse values need the shader-f16 feature, which this device lacks`,
    );
  }
  if (dtype !== "f16" && dtype !== "f32") throw new ArgumentError(`${label}: bad dtype ${dtype}`);
  const maxRows = opts.maxRowsPerChunk ?? Infinity;
  if (!(maxRows >= 1 && (maxRows === Infinity || Number.isInteger(maxRows)))) {
    throw new ArgumentError(`${label}: maxRowsPerChunk must be an integer >= 1, got ${maxRows}`);
  }
  const texture = opts.texture ?? gpu.cpu?.weightTextures ?? false;
  // The groups layout's u16 columns stop at SPARSE_MAX_COLS; past that every adapter uses deltas.
  const layout = opts.layout ?? (s.cols <= SPARSE_MAX_COLS ? gpu.cpu?.sparseLayout : undefined) ?? "delta";
  if (layout !== "delta" && layout !== "groups") {
    throw new ArgumentError(`${label}: layout must be "delta" or "groups", got ${JSON.stringify(layout)}`);
  }
  const starts = layout === "delta" && s.format === "unstructured" && (opts.starts ?? !gpu.isCpu);
  if (s.format === "unstructured") {
    if (opts.deltaBits !== undefined && opts.deltaBits !== 4 && opts.deltaBits !== 8) {
      throw new ArgumentError(`${label}: deltaBits must be 4 or 8, got ${opts.deltaBits}`);
    }
    const { chunks, bytes, blocks, bits } = layout === "delta"
      ? uploadDelta(gpu, s, dtype, label, maxRows, opts.deltaBits, texture, starts)
      : { ...uploadUnstructured(gpu, s, dtype, label, maxRows, texture), blocks: 0, bits: 0 as const };
    return {
      format: "unstructured",
      rows: s.rows,
      cols: s.cols,
      dtype,
      keep: 0,
      group: 0,
      idxStride: 0,
      texture,
      layout,
      blocks,
      deltaBits: bits,
      starts,
      chunks,
      bytes,
    };
  }
  const { chunks, bytes, idxStride } = uploadNM(gpu, s, dtype, label, maxRows, texture);
  return {
    format: "nm",
    rows: s.rows,
    cols: s.cols,
    dtype,
    keep: s.keep,
    group: s.group,
    idxStride,
    texture,
    layout: "groups",
    blocks: 0,
    deltaBits: 0,
    starts: false,
    chunks,
    bytes,
  };
}

/**
 * Free the matrix's buffers and textures and empty `chunks`; `undefined` is a no-op.
 *
 * @example Releasing frees every buffer of the matrix
 * ```ts
 * import { Gpu, packUnstructured, releaseSparse, uploadSparse } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const live = gpu.liveBuffers;
 * const s = packUnstructured(new Float32Array([1, 0, 0, 2, 0, 3]), 3, 2);
 * const w = uploadSparse(gpu, s, { maxRowsPerChunk: 1, texture: false, layout: "groups" });
 * assert.equal(gpu.liveBuffers, live + 2 * 3); // row offsets and groups of 3 chunks
 * releaseSparse(gpu, w);
 * assert.equal(gpu.liveBuffers, live);
 * assert.equal(w.chunks.length, 0);
 * releaseSparse(gpu, undefined); // a no-op, handy for optional weights
 * gpu.destroy();
 * ```
 */
export function releaseSparse(gpu: Gpu, m: GpuSparseMatrix | undefined): void {
  if (!m) return;
  for (const c of m.chunks) {
    gpu.release(c.ptr, c.data, c.idx);
    c.tex?.destroy();
  }
  m.chunks = [];
}
