/**
 * Sparse linear kernels: Y[m, colOffset + r] (+)= sum_k X[m, k] * W[r, k] (+ bias), W sparse,
 * f32 or f16 values, f32 accumulation. ARCHITECTURE.md, "Sparse formats and kernels", has the
 * measurements behind every choice here.
 *
 * Weight layouts (built by src/sparse/upload.ts), per row chunk:
 * - `unstructured`: P u32 [rows + 1] (first group of each row, relative to the chunk) and E, the
 *   groups, read as vec4<u32>: f32 values in groups of 8 nonzeros = 3 vec4 (8 f32 bit patterns,
 *   then 4 words of two u16 columns, low half first); f16 values in groups of 4 = 1 vec4 (each
 *   word `column | f16 bits << 16`). Rows are padded to whole groups with value 0 and the row's
 *   last column, so columns never decrease along a row.
 * - `nm` (keep of every `group` columns): I u32 [rows, idxStride] positions within the group,
 *   `bits` = 2/4/8 each (group <= 4 / 16 / 256), slot e of a row in word e / (32 / bits); V the
 *   values, `32 / bits` per index word (f32, or f16 pairs in u32, low half first), zero-padded.
 *   Slot e is column `(e / keep) * group + position`.
 * - `delta` (unstructured, the default; `layout: "delta"`): columns in blocks of SPARSE_DELTA_BLOCK = 4096, P u32 [rows * blocks + 1]
 *   (first group of block b of row r at r * blocks + b; the next entry ends it), and groups of
 *   entries, each a value and a column delta of `deltaBits` bits: 8-bit deltas in groups of 16
 *   (f32 5 texels: 16 value bit patterns, then 4 words of four u8 deltas, lowest byte first; f16
 *   3 texels: 8 words of two f16, low half first, then the 4 delta words), 4-bit deltas in groups
 *   of 32 (f32 9 texels: 32 values, then 4 words of eight nibbles, lowest first; f16 5 texels: 16
 *   words of two f16, then the 4 delta words). A block's running column starts at its first
 *   column and each entry adds its delta before its multiply-add; escapes (the largest delta, 255
 *   or 15, with value 0) bridge longer gaps, padding is delta 0, value 0. 5 / 3 (8-bit) or 4.5 /
 *   2.5 (4-bit) bytes a kept weight instead of the groups' 6 / 4, and slots hold whole blocks, so a
 *   segment is a block range: no binary search, no masking. Measured (11008x4096 GEMV, lavapipe,
 *   one interleaved run, ms): f32 50/70/90% 23.6 / 14.9 / 4.0 against the groups' 27.8 / 21.0 /
 *   6.7; f16 19.0 / 17.6 / 3.3 against 30.3 / 25.1 / 10.1. With `starts` (uploadSparse's default
 *   on GPUs) P also holds, after its rows * blocks + 1 offsets, a u32 per group: the running
 *   column before the group's first entry, from which the wg version's lanes each decode a group.
 * - `wtex`: E (unstructured) or V (nm) live in a read-only rgba32uint storage texture instead (4
 *   words a texel, flat layout: texel i at (i % SPARSE_TEX_WIDTH, i / SPARSE_TEX_WIDTH); storage,
 *   not sampled, as lavapipe reads a sampled texture through a call per fetch). lavapipe fetches a
 *   texel per lane with one 16-byte load where a storage vec4 load is a per-lane, per-component
 *   loop with bounds checks: measured 11008x4096 f32 GEMV, 70%, 17-25 ms against 27-29 ms.
 *
 * X sources and versions:
 * - `lane` + `ubo` (CPU adapters): one invocation per weight row and `tm` (1, 4, 8 or 16)
 *   activation rows. X comes from 64 KiB uniform slots written by {@linkcode sparsePackXWgsl}:
 *   `tm` = 1 reads one slot of 16384 columns of one activation row; `tm` >= 4 reads one slot per
 *   quad of 4 rows (4096 columns as vec4), so each decoded weight serves 4-16 rows.
 *   On lavapipe a uniform-buffer load with a per-lane index is a branch-free gather, while a
 *   storage load is a per-lane loop with a bounds check and a branch per component: the random
 *   X reads of a sparse row are the dominant cost, and the uniform slot makes them ~1.5x cheaper.
 *   `segmented`: K is wider than a slot; the launcher dispatches once per column segment
 *   [c0, c1) (the first writes Y, the others add to it), unstructured rows binary-search their
 *   first and last group of the segment and mask entries outside it.
 * - `lane` + `storage` (GEMM on GPUs): one invocation per (weight row, `tm` activation rows), X
 *   read from storage [M, K].
 * - `wg` + `storage` (GEMV on GPUs): a workgroup per (weight row, activation row); lanes stride
 *   the row's groups (consecutive lanes read consecutive groups; a delta group starts from its
 *   stored start column) and reduce in shared memory.
 *
 * Uniforms: rows (of the chunk), M, K, ldY, colOffset (the chunk's first row), m0 (first
 * activation row; lane+ubo), c0, c1 (column segment; lane+ubo), accumulate (0: write, 1: add),
 * idxStride (nm). Bindings: 0 uniforms, 1 X (uniform slot or storage), 2 P or I, 3 E or V
 * (storage, or the texture when `wtex`), 4 Y read_write, then (ubo, tm 8 / 16) the uniform
 * slots of quads 1.. of the activation rows, then the bias (optional; at
 * {@linkcode sparseBiasBinding}). Every loop of an invocation walks at most one row's groups (at
 * most 16384 for 65536 columns) plus two binary searches (delta: at most 257 groups and a step per
 * block, 4 blocks per slot): under lavapipe's 65535-step limit.
 * @module
 */
import { type GpuDType, LINEAR_WID, WORKGROUP_ID_ARGS } from "./common.ts";

/**
 * Sparse weight formats: `unstructured` (any pattern) or `nm` (N:M, a fixed count kept per group of columns).
 *
 * @example The two formats' kernels find a row's weights differently
 * ```ts
 * import { type SparseFormat, type SparseLinearOptions, sparseLinearWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const options = (format: SparseFormat): SparseLinearOptions => ({
 *   format, dtype: "f32", variant: "lane", x: "storage", tm: 1, segmented: false, bias: false, wtex: false,
 *   layout: "groups", keep: format === "nm" ? 2 : 0, group: format === "nm" ? 4 : 0, workgroupSize: 64,
 * });
 * // Unstructured rows are found through row offsets P; N:M rows have a fixed count of index words I.
 * assert.match(sparseLinearWgsl(options("unstructured")), /var<storage, read> P: array<u32>/);
 * assert.match(sparseLinearWgsl(options("nm")), /var<storage, read> I: array<u32>/);
 * ```
 */
export type SparseFormat = "unstructured" | "nm";
/**
 * Version of the sparse linear kernel: `lane` (one invocation per weight row) or `wg` (a workgroup per weight
 * row and activation row, GPU GEMV).
 *
 * @example A workgroup per output (wg) or an invocation per output (lane)
 * ```ts
 * import {
 *   type SparseLinearOptions, sparseLinearWgsl, sparseLinearWorkgroups, type SparseVariant,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const options = (variant: SparseVariant): SparseLinearOptions => ({
 *   format: "unstructured", dtype: "f32", variant, x: "storage", tm: 1, segmented: false, bias: false,
 *   wtex: false, layout: "groups", keep: 0, group: 0, workgroupSize: 64,
 * });
 * // 100 weight rows, 3 activation rows: `wg` takes a workgroup per (weight row, activation row) and
 * // reduces in shared memory; `lane` one invocation per pair, 64 to a workgroup.
 * assert.equal(sparseLinearWorkgroups(options("wg"), 100, 3), 300);
 * assert.equal(sparseLinearWorkgroups(options("lane"), 100, 3), Math.ceil(300 / 64));
 * assert.match(sparseLinearWgsl(options("wg")), /var<workgroup> part/);
 * assert.doesNotMatch(sparseLinearWgsl(options("lane")), /var<workgroup>/);
 * ```
 */
export type SparseVariant = "lane" | "wg";
/**
 * Where the kernel reads X: `ubo` (a 64 KiB uniform slot, CPU adapters) or `storage` (a storage buffer).
 *
 * @example X from a 64 KiB uniform slot or from a storage buffer
 * ```ts
 * import { type SparseLinearOptions, sparseLinearWgsl, type SparseXSource } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const options = (x: SparseXSource): SparseLinearOptions => ({
 *   format: "unstructured", dtype: "f32", variant: "lane", x, tm: 4, segmented: false, bias: false,
 *   wtex: false, layout: "groups", keep: 0, group: 0, workgroupSize: 8,
 * });
 * // `ubo`: X is read from a 64 KiB uniform slot (4096 vec4s: 4 activation rows of 4096 columns);
 * // `storage`: from the whole f32 [M, K] buffer.
 * assert.match(sparseLinearWgsl(options("ubo")), /var<uniform> XS: array<vec4<f32>, 4096>/);
 * assert.match(sparseLinearWgsl(options("storage")), /var<storage, read> X: array<f32>/);
 * ```
 */
export type SparseXSource = "ubo" | "storage";
/**
 * Unstructured GPU layout: CSR groups (u16 columns) or column deltas (the default; see the module doc).
 *
 * @example Both unstructured layouts give the same product
 * ```ts
 * import {
 *   Gpu, packUnstructured, releaseSparse, type SparseGpuLayout, sparseLinear, uploadSparse,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const s = packUnstructured(new Float32Array([0, 2, 0, 0, 1, 0, 0, 3]), 2, 4);
 * const x = gpu.upload(new Float32Array([1, 2, 3, 4]), "x"), y = gpu.buffer(2 * 4, "y");
 * const layouts: SparseGpuLayout[] = ["groups", "delta"];
 * for (const layout of layouts) {
 *   const w = uploadSparse(gpu, s, { layout }); // in a texture on CPU adapters, in storage on GPUs
 *   assert.equal(w.layout, layout);
 *   sparseLinear(gpu, x, w, y, 1); // the same product either way: [2 * 2, 1 * 1 + 3 * 4]
 *   assert.deepEqual(await gpu.readF32(y), new Float32Array([4, 13]));
 *   releaseSparse(gpu, w);
 * }
 * gpu.release(x, y);
 * gpu.destroy();
 * ```
 */
export type SparseGpuLayout = "groups" | "delta";

/**
 * Compile-time options of the sparse linear kernel (format, dtype, version, X source and layout flags); see
 * the module doc.
 *
 * @example Options of a 2:4 kernel with a bias: its WGSL and its dispatch size
 * ```ts
 * import { type SparseLinearOptions, sparseLinearWgsl, sparseLinearWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * // 2:4 weights, f32 values in storage, X from storage, 4 activation rows per invocation, with a bias.
 * const o: SparseLinearOptions = {
 *   format: "nm", dtype: "f32", variant: "lane", x: "storage", tm: 4, segmented: false, bias: true,
 *   wtex: false, layout: "groups", keep: 2, group: 4, workgroupSize: 64,
 * };
 * const wgsl = sparseLinearWgsl(o);
 * assert.match(wgsl, /@compute @workgroup_size\(64\)/);
 * assert.equal(wgsl.match(/@binding\(\d\)/g)!.length, 6); // uniforms, X, I, V, Y and the bias
 * // 100 weight rows times 8 activation rows in pairs of (row, 4 activation rows), 64 a workgroup:
 * assert.equal(sparseLinearWorkgroups(o, 100, 8), Math.ceil((100 * 8) / 4 / 64));
 * ```
 */
export interface SparseLinearOptions {
  /** Weight format. */
  format: SparseFormat;
  /** Value dtype. */
  dtype: GpuDType;
  /** Kernel version. */
  variant: SparseVariant;
  /** Where X is read from. */
  x: SparseXSource;
  /**
   * Activation rows per invocation (lane only): 1, or 4, 8 or 16 in quads of 4 (each quad its own
   * vec4 accumulator and, with `ubo`, its own uniform X slot), so a row's weights are decoded once
   * per `tm` activation rows.
   */
  tm: 1 | 4 | 8 | 16;
  /** Column segments (lane + ubo only). */
  segmented: boolean;
  /** Whether the kernel adds a bias (binding 5, or after the extra X slots: sparseBiasBinding). */
  bias: boolean;
  /** Weight groups (unstructured) or values (nm) read from an rgba32uint texture, not storage. */
  wtex: boolean;
  /**
   * Unstructured only: `delta` reads the column-delta layout (the wg version: with the groups'
   * start columns in P); "groups" otherwise (and for nm).
   */
  layout: SparseGpuLayout;
  /** delta layout only: bits of a column delta, 8 (default) or 4 (see the module doc). */
  deltaBits?: 4 | 8;
  /** nm only (0 for unstructured): kept per group and group length. */
  keep: number;
  /** nm only (0 for unstructured): the group length M. */
  group: number;
  /** Invocations per workgroup. */
  workgroupSize: number;
}

/**
 * Nonzeros per group of the unstructured layout.
 *
 * @example Row offsets count groups of SPARSE_GROUP nonzeros
 * ```ts
 * import { Gpu, packUnstructured, releaseSparse, SPARSE_GROUP, uploadSparse } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * // Row 0 keeps 10 weights, row 1 keeps 3; f32 values go in groups of 8 nonzeros.
 * const W = new Float32Array(2 * 20);
 * for (let c = 0; c < 10; c++) W[2 * c] = c + 1;
 * W[20] = W[25] = W[39] = -1;
 * const w = uploadSparse(gpu, packUnstructured(W, 2, 20), { texture: false, layout: "groups" });
 * const groups = [Math.ceil(10 / SPARSE_GROUP.f32), Math.ceil(3 / SPARSE_GROUP.f32)]; // [2, 1]
 * // The row offsets count groups: row 0 is groups [0, 2), row 1 is [2, 3).
 * assert.deepEqual([...await gpu.readU32(w.chunks[0].ptr!)], [0, groups[0], groups[0] + groups[1]]);
 * releaseSparse(gpu, w);
 * gpu.destroy();
 * ```
 */
export const SPARSE_GROUP: Record<GpuDType, number> = { f32: 8, f16: 4 };
/**
 * Entries per group of the delta layout with 8-bit deltas (4-bit deltas: twice as many).
 *
 * @example The delta kernel unrolls one multiply-add per entry of a group
 * ```ts
 * import { SPARSE_DELTA_GROUP, type SparseLinearOptions, sparseLinearWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: SparseLinearOptions = {
 *   format: "unstructured", dtype: "f32", variant: "lane", x: "ubo", tm: 1, segmented: false, bias: false,
 *   wtex: true, layout: "delta", deltaBits: 8, keep: 0, group: 0, workgroupSize: 8,
 * };
 * // The kernel unrolls one multiply-add per entry of a group: 16 with 8-bit deltas, 32 with 4-bit ones.
 * const entries = (wgsl: string) => wgsl.match(/acc \+= /g)!.length;
 * assert.equal(entries(sparseLinearWgsl(o)), SPARSE_DELTA_GROUP);
 * assert.equal(entries(sparseLinearWgsl({ ...o, deltaBits: 4 })), 2 * SPARSE_DELTA_GROUP);
 * ```
 */
export const SPARSE_DELTA_GROUP = 16;

/** Entries per group of the delta layout with `bits`-bit deltas: 16 (8-bit) or 32 (4-bit). */
export function deltaGroupEntries(bits: 4 | 8 = 8): number {
  return bits === 8 ? SPARSE_DELTA_GROUP : 2 * SPARSE_DELTA_GROUP;
}
/**
 * Columns per block of the delta layout (a row's deltas restart at each block; slots hold whole blocks).
 *
 * @example A 5000-column weight takes two blocks a row
 * ```ts
 * import { Gpu, packUnstructured, releaseSparse, SPARSE_DELTA_BLOCK, uploadSparse } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const K = 5000; // block 0: columns [0, 4096), block 1: [4096, 5000)
 * const W = new Float32Array(2 * K);
 * W[7] = 1; // row 0, block 0
 * W[K + 4999] = 2; // row 1, block 1
 * const s = packUnstructured(W, 2, K);
 * const w = uploadSparse(gpu, s, { texture: true, layout: "delta", deltaBits: 8, starts: false });
 * assert.equal(w.blocks, Math.ceil(K / SPARSE_DELTA_BLOCK));
 * // One offset per (row, block), plus the end: only (0, 0) and (1, 1) hold a group of entries.
 * assert.deepEqual([...await gpu.readU32(w.chunks[0].ptr!)], [0, 1, 1, 1, 2]);
 * releaseSparse(gpu, w);
 * // With starts (the GPU default), each group's start column follows: block 0 at 0, block 1 at 4096.
 * const ws = uploadSparse(gpu, s, { texture: false, layout: "delta", deltaBits: 8, starts: true });
 * assert.deepEqual([...await gpu.readU32(ws.chunks[0].ptr!)], [0, 1, 1, 1, 2, 0, SPARSE_DELTA_BLOCK]);
 * releaseSparse(gpu, ws);
 * gpu.destroy();
 * ```
 */
export const SPARSE_DELTA_BLOCK = 4096;
/**
 * Texels per row of the weight textures (flat layout, 16 KiB rows).
 *
 * @example Weight textures are SPARSE_TEX_WIDTH texels wide
 * ```ts
 * import { Gpu, packUnstructured, releaseSparse, SPARSE_TEX_WIDTH, uploadSparse } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * // 4 dense rows of 1000 f32 weights: 125 groups of 8 a row, 3 texels (12 words) a group.
 * const w = uploadSparse(gpu, packUnstructured(new Float32Array(4 * 1000).fill(1), 4, 1000), {
 *   texture: true,
 *   layout: "groups",
 * });
 * const tex = w.chunks[0].tex!;
 * assert.equal(tex.width, SPARSE_TEX_WIDTH); // texel i at (i % SPARSE_TEX_WIDTH, i / SPARSE_TEX_WIDTH)
 * assert.equal(tex.height, Math.ceil((4 * 125 * 3) / SPARSE_TEX_WIDTH)); // 1500 texels: 2 rows
 * releaseSparse(gpu, w);
 * gpu.destroy();
 * ```
 */
export const SPARSE_TEX_WIDTH = 1024;
/**
 * f32 elements of one uniform X slot (64 KiB, WebGPU's default maxUniformBufferBindingSize).
 *
 * @example How many columns of X a uniform slot holds
 * ```ts
 * import { SPARSE_SLOT_FLOATS, sparseSlotCols } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(SPARSE_SLOT_FLOATS * 4, 64 * 1024); // WebGPU's default maxUniformBufferBindingSize
 * // A slot holds 16384 columns of one activation row, or 4096 columns of 4 rows:
 * assert.equal(sparseSlotCols(1), SPARSE_SLOT_FLOATS);
 * assert.equal(sparseSlotCols(4), SPARSE_SLOT_FLOATS / 4);
 * // so X [8, 5000] takes 2 m-tiles of 4 rows times 2 column segments: 4 slots.
 * assert.equal(Math.ceil(8 / 4) * Math.ceil(5000 / sparseSlotCols(4)), 4);
 * ```
 */
export const SPARSE_SLOT_FLOATS = 16384;
export const SPARSE_SLOT_BYTES = SPARSE_SLOT_FLOATS * 4;
/** Workgroup size of the X packing kernel. */
export const SPARSE_PACKX_WG = 64;

export function sparseIndexBits(group: number): 2 | 4 | 8 {
  return group <= 4 ? 2 : group <= 16 ? 4 : 8;
}

/**
 * Pipeline cache key of {@linkcode sparseLinearWgsl} for these options.
 *
 * @example Equal options share a key, different ones do not
 * ```ts
 * import { sparseLinearKey, type SparseLinearOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: SparseLinearOptions = {
 *   format: "nm", dtype: "f32", variant: "lane", x: "ubo", tm: 4, segmented: false, bias: false,
 *   wtex: true, layout: "groups", keep: 2, group: 4, workgroupSize: 8,
 * };
 * // Equal options share a pipeline (gpu.pipeline(key, wgsl)); any difference gets its own.
 * assert.equal(sparseLinearKey(o), sparseLinearKey({ ...o }));
 * assert.notEqual(sparseLinearKey(o), sparseLinearKey({ ...o, keep: 1 }));
 * assert.notEqual(sparseLinearKey(o), sparseLinearKey({ ...o, bias: true }));
 * assert.notEqual(sparseLinearKey(o), sparseLinearKey({ ...o, dtype: "f16" }));
 * ```
 */
export function sparseLinearKey(o: SparseLinearOptions): string {
  const nm = o.format === "nm"
    ? `/${o.keep}:${o.group}`
    : o.layout === "delta"
    ? `/delta${o.deltaBits ?? 8}`
    : "";
  const flags = `s${+o.segmented}/t${+o.wtex}/b${+o.bias}`;
  return `sparse/${o.format}${nm}/${o.dtype}/${o.variant}/${o.x}/tm${o.tm}/${flags}/wg${o.workgroupSize}`;
}

/**
 * Columns of one X slot for `tm` activation rows (a whole number of N:M groups).
 *
 * @example Columns per slot, rounded down to whole N:M groups
 * ```ts
 * import { sparseSlotCols } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(sparseSlotCols(1), 16384); // one activation row: 16384 f32 in 64 KiB
 * assert.equal(sparseSlotCols(4), 4096); // 4 rows: 4096 vec4
 * // With N:M groups of 3 a slot holds whole groups only: 4095 columns, not 4096.
 * assert.equal(sparseSlotCols(4, 3), 4095);
 * // X [1, 20000] then takes 2 column segments.
 * assert.equal(Math.ceil(20000 / sparseSlotCols(1)), 2);
 * ```
 */
export function sparseSlotCols(tm: 1 | 4 | 8 | 16, group = 1): number {
  const s = SPARSE_SLOT_FLOATS / Math.min(tm, 4); // tm > 4 takes one slot per quad of 4 rows
  return Math.floor(s / group) * group;
}

/**
 * Quads of 4 activation rows of a lane invocation (1 for tm = 1): its vec4 accumulators and, with
 * X from uniform slots, the slots it binds.
 *
 * @example A lane invocation of 16 activation rows reads 4 uniform X slots
 * ```ts
 * import { type SparseLinearOptions, sparseLinearWgsl, sparseQuads } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: SparseLinearOptions = {
 *   format: "unstructured", dtype: "f32", variant: "lane", x: "ubo", tm: 16, segmented: false, bias: false,
 *   wtex: true, layout: "delta", deltaBits: 4, keep: 0, group: 0, workgroupSize: 8,
 * };
 * assert.deepEqual([1, 4, 8, 16].map((tm) => sparseQuads(tm as 1 | 4 | 8 | 16)), [1, 1, 2, 4]);
 * // One uniform X slot per quad: binding 1, then 5, 6 and 7 after Y.
 * assert.equal(sparseLinearWgsl(o).match(/var<uniform> XS\d*: /g)!.length, sparseQuads(o.tm));
 * ```
 */
export function sparseQuads(tm: 1 | 4 | 8 | 16): number {
  return tm === 1 ? 1 : tm / 4;
}

/**
 * Binding of the bias: after Y (4) and, with X from uniform slots, the X slots of quads 1.. .
 *
 * @example The bias follows the extra X slots
 * ```ts
 * import { sparseBiasBinding, type SparseLinearOptions, sparseLinearWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: SparseLinearOptions = {
 *   format: "unstructured", dtype: "f32", variant: "lane", x: "ubo", tm: 8, segmented: false, bias: true,
 *   wtex: true, layout: "delta", deltaBits: 4, keep: 0, group: 0, workgroupSize: 8,
 * };
 * assert.equal(sparseBiasBinding(o), 6); // Y at 4, the second X slot at 5
 * assert.equal(sparseBiasBinding({ ...o, tm: 4 }), 5);
 * assert.equal(sparseBiasBinding({ ...o, x: "storage" }), 5); // one X binding whatever tm
 * assert.match(sparseLinearWgsl(o), /@binding\(6\) var<storage, read> B/);
 * ```
 */
export function sparseBiasBinding(o: SparseLinearOptions): number {
  return 5 + (o.x === "ubo" ? sparseQuads(o.tm) - 1 : 0);
}

/** Accumulator of quad `k` (`acc`, `acc1`, ...) and uniform X slot of quad `k` (`XS`, `XS1`, ...). */
function accName(k: number): string {
  return k === 0 ? "acc" : `acc${k}`;
}
function xsName(k: number): string {
  return k === 0 ? "XS" : `XS${k}`;
}

/**
 * WGSL adding weight value `v` times X at column `c` (an identifier: relative to the slot with
 * `ubo`, to X's row with `storage`) to the accumulators of all `tm` activation rows.
 */
function multiplyAdd(o: SparseLinearOptions, v: string, c: string): string {
  const quads = sparseQuads(o.tm);
  const xq = (k: number) =>
    o.x === "ubo"
      ? `${xsName(k)}[${c}]`
      : `vec4<f32>(${[0, 1, 2, 3].map((i) => `X[xr${4 * k + i} + ${c}]`).join(", ")})`;
  if (o.tm === 1) {
    return o.x === "ubo" ? `acc += ${v} * XS[${c} >> 2u][${c} & 3u];` : `acc += ${v} * X[xr0 + ${c}];`;
  }
  if (quads === 1 && o.x === "ubo") return `acc += ${v} * ${xq(0)};`;
  const adds = Array.from({ length: quads }, (_, k) => `${accName(k)} += wv * ${xq(k)};`);
  return `{ let wv = ${v}; ${adds.join(" ")} }`;
}

/** WGSL declaring the zeroed accumulators. */
function accumulators(o: SparseLinearOptions): string {
  if (o.tm === 1) return "var acc = 0.0;";
  return Array.from({ length: sparseQuads(o.tm) }, (_, k) => `var ${accName(k)} = vec4<f32>(0.0);`).join(" ");
}

/**
 * Most loop steps one invocation takes over a row of `units` units (groups, or N:M index words):
 * the lane versions walk all of them (plus two binary searches of ~17 steps when segmented), the
 * wg version 1 / workgroupSize of them. Launchers compare this with CPU_LOOP_LIMIT.
 */
export function sparseLoopSteps(o: SparseLinearOptions, units: number): number {
  const walk = o.variant === "wg" ? Math.ceil(units / o.workgroupSize) + 8 : units + 1;
  return walk + (o.segmented ? 40 : 0);
}

/**
 * Workgroups of one dispatch over a chunk of `rows` rows (M activation rows).
 *
 * @example Workgroups of each version for 37 weight rows and 9 activation rows
 * ```ts
 * import { type SparseLinearOptions, sparseLinearWorkgroups } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const o: SparseLinearOptions = {
 *   format: "unstructured", dtype: "f32", variant: "lane", x: "storage", tm: 4, segmented: false,
 *   bias: false, wtex: false, layout: "groups", keep: 0, group: 0, workgroupSize: 64,
 * };
 * const rows = 37, M = 9; // a chunk of 37 weight rows, 9 activation rows
 * // lane + storage: an invocation per (weight row, 4 activation rows).
 * assert.equal(sparseLinearWorkgroups(o, rows, M), Math.ceil((rows * Math.ceil(M / 4)) / 64));
 * // lane + ubo: an invocation per weight row (one dispatch per m-tile and column segment).
 * assert.equal(sparseLinearWorkgroups({ ...o, x: "ubo", workgroupSize: 8 }, rows, M), Math.ceil(rows / 8));
 * // wg: a workgroup per (weight row, activation row).
 * assert.equal(sparseLinearWorkgroups({ ...o, variant: "wg", tm: 1 }, rows, M), rows * M);
 * ```
 */
export function sparseLinearWorkgroups(o: SparseLinearOptions, rows: number, M: number): number {
  if (o.variant === "wg") return rows * M;
  if (o.x === "ubo") return Math.ceil(rows / o.workgroupSize);
  return Math.ceil(rows * Math.ceil(M / o.tm) / o.workgroupSize);
}

interface Entry {
  v: string;
  col: string;
}

/** WGSL that loads unit `j` (a group, or an index word) and lists its entries. */
function decodeUnit(o: SparseLinearOptions): { pre: string; entries: Entry[] } {
  if (o.format === "unstructured") {
    if (o.dtype === "f32") {
      const entries: Entry[] = [];
      const comp = ["x", "y", "z", "w"];
      for (let q = 0; q < 8; q++) {
        const src = q < 4 ? "g0" : "g1";
        const iw = `gi.${comp[q >> 1]}`;
        entries.push({
          v: `bitcast<f32>(${src}.${comp[q & 3]})`,
          col: q & 1 ? `(${iw} >> 16u)` : `(${iw} & 0xffffu)`,
        });
      }
      return { pre: "let g0 = eld(3u * j); let g1 = eld(3u * j + 1u); let gi = eld(3u * j + 2u);", entries };
    }
    const entries = ["x", "y", "z", "w"].map((c) => ({
      v: `unpack2x16float(e.${c}).y`,
      col: `(e.${c} & 0xffffu)`,
    }));
    return { pre: "let e = eld(j);", entries };
  }
  const bits = sparseIndexBits(o.group), vpw = 32 / bits, mask = (1 << bits) - 1;
  const pre: string[] = ["let bits = I[rowBase + j];", `let e0 = j * ${vpw}u;`];
  const vals: string[] = [];
  if (o.dtype === "f32") {
    for (let q = 0; q < vpw / 4; q++) {
      pre.push(`let v${q} = vld((rowBase + j) * ${vpw / 4}u + ${q}u);`);
      for (const c of ["x", "y", "z", "w"]) vals.push(`v${q}.${c}`);
    }
  } else {
    const per = Math.min(4, vpw / 2); // u32 words (f16 pairs) per load
    const comps = ["x", "y", "z", "w"].slice(0, per);
    for (let q = 0; q < vpw / 2 / per; q++) {
      pre.push(`let v${q} = vld((rowBase + j) * ${vpw / 2 / per}u + ${q}u);`);
      for (const c of comps) {
        pre.push(`let h${q}${c} = unpack2x16float(v${q}.${c});`);
        vals.push(`h${q}${c}.x`, `h${q}${c}.y`);
      }
    }
  }
  const entries = vals.map((v, t) => ({
    v,
    col: `((e0 + ${t}u) / ${o.keep}u * ${o.group}u + ((bits >> ${t * bits}u) & ${mask}u))`,
  }));
  return { pre: pre.join("\n    "), entries };
}

/** WGSL fetching texel `i` of the flat weight texture WT (SPARSE_TEX_WIDTH texels a row). */
function texel(i: string): string {
  const tw = SPARSE_TEX_WIDTH;
  return `textureLoad(WT, vec2<u32>((${i}) % ${tw}u, (${i}) / ${tw}u))`;
}

/** WGSL storing (or, with u.accumulate, adding) the `tm` accumulators into Y, plus the bias. */
function storeRows(o: SparseLinearOptions): string {
  const b = o.bias ? " + B[u.colOffset + r]" : "";
  const store: string[] = [];
  for (let i = 0; i < o.tm; i++) {
    const a = o.tm === 1 ? "acc" : `${accName(i >> 2)}[${i & 3}]`;
    store.push(`if (m0 + ${i}u < u.M) {
    let yi = (m0 + ${i}u) * u.ldY + u.colOffset + r;
    if (u.accumulate != 0u) { Y[yi] = Y[yi] + ${a}; } else { Y[yi] = ${a}${b}; }
  }`);
  }
  return store.join("\n  ");
}

function bindings(o: SparseLinearOptions): string {
  const slot = (k: number, b: number) =>
    `@group(0) @binding(${b}) var<uniform> ${xsName(k)}: array<vec4<f32>, ${SPARSE_SLOT_FLOATS / 4}>;`;
  const x = o.x === "ubo" ? slot(0, 1) : "@group(0) @binding(1) var<storage, read> X: array<f32>;";
  // With X in uniform slots, quads 1.. of the activation rows have their own slots after Y.
  const moreSlots = o.x === "ubo"
    ? Array.from({ length: sparseQuads(o.tm) - 1 }, (_, k) => slot(k + 1, 5 + k)).join("\n")
    : "";
  // Weights from storage, or (wtex) from an rgba32uint texture in the flat layout: 4 words a
  // texel, texel i at (i % SPARSE_TEX_WIDTH, i / SPARSE_TEX_WIDTH).
  let w: string;
  if (o.format === "unstructured" && o.layout === "delta") {
    w = `@group(0) @binding(2) var<storage, read> P: array<u32>;
${
      o.wtex
        ? "@group(0) @binding(3) var WT: texture_storage_2d<rgba32uint, read>;"
        : "@group(0) @binding(3) var<storage, read> E: array<vec4<u32>>;"
    }`;
  } else if (o.format === "unstructured") {
    w = o.wtex
      ? `@group(0) @binding(2) var<storage, read> P: array<u32>;
@group(0) @binding(3) var WT: texture_storage_2d<rgba32uint, read>;
fn eld(i: u32) -> vec4<u32> { return ${texel("i")}; }`
      : `@group(0) @binding(2) var<storage, read> P: array<u32>;
@group(0) @binding(3) var<storage, read> E: array<vec4<u32>>;
fn eld(i: u32) -> vec4<u32> { return E[i]; }`;
  } else {
    const vpw = 32 / sparseIndexBits(o.group);
    const vt = o.dtype === "f32" ? "vec4<f32>" : vpw >= 8 ? "vec4<u32>" : "vec2<u32>";
    let vld: string;
    if (!o.wtex) {
      vld =
        `@group(0) @binding(3) var<storage, read> V: array<${vt}>;\nfn vld(i: u32) -> ${vt} { return V[i]; }`;
    } else if (vt === "vec4<f32>") {
      vld = `fn vld(i: u32) -> vec4<f32> { return bitcast<vec4<f32>>(${texel("i")}); }`;
    } else if (vt === "vec4<u32>") vld = `fn vld(i: u32) -> vec4<u32> { return ${texel("i")}; }`;
    else {vld = `fn vld(i: u32) -> vec2<u32> { let t = ${
        texel("i >> 1u")
      }; return select(t.xy, t.zw, (i & 1u) == 1u); }`;}
    w = `@group(0) @binding(2) var<storage, read> I: array<u32>;
${o.wtex ? "@group(0) @binding(3) var WT: texture_storage_2d<rgba32uint, read>;\n" : ""}${vld}`;
  }
  return `struct U { rows: u32, M: u32, K: u32, ldY: u32, colOffset: u32, m0: u32, c0: u32, c1: u32, accumulate: u32, idxStride: u32 }
@group(0) @binding(0) var<uniform> u: U;
${x}
${w}
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
${moreSlots}
${o.bias ? `@group(0) @binding(${sparseBiasBinding(o)}) var<storage, read> B: array<f32>;` : ""}`;
}

/** Binary searches over a row's groups (unstructured, segmented). */
function searchFns(o: SparseLinearOptions): string {
  const first = o.dtype === "f32" ? "eld(3u * g + 2u).x & 0xffffu" : "eld(g).x & 0xffffu";
  const last = o.dtype === "f32" ? "eld(3u * g + 2u).w >> 16u" : "eld(g).w & 0xffffu";
  // One binary search per key: the first group in [lo, hi) whose key column is >= c.
  const search = (name: string, what: string, key: string) => `
// First group in [lo, hi) whose ${what} column is >= c.
fn ${name}(lo0: u32, hi0: u32, c: u32) -> u32 {
  var lo = lo0; var hi = hi0;
  loop {
    if (lo >= hi) { break; }
    let g = (lo + hi) / 2u;
    if ((${key}) < c) { lo = g + 1u; } else { hi = g; }
  }
  return lo;
}`;
  return search("firstEndingAtOrAfter", "last", last) + search("firstStartingAtOrAfter", "first", first);
}

/** Range [ja, jb) of units of row r (all of them, or those meeting the column segment). */
function rowRange(o: SparseLinearOptions): string {
  if (o.format === "unstructured") {
    if (!o.segmented) return "let ja = P[r]; let jb = P[r + 1u];";
    return `let ja = firstEndingAtOrAfter(P[r], P[r + 1u], u.c0);
  let jb = firstStartingAtOrAfter(ja, P[r + 1u], u.c1);`;
  }
  const vpw = 32 / sparseIndexBits(o.group);
  if (!o.segmented) return "let rowBase = r * u.idxStride; let ja = 0u; let jb = u.idxStride;";
  return `let rowBase = r * u.idxStride;
  let ja = (u.c0 / ${o.group}u) * ${o.keep}u / ${vpw}u;
  let jb = min(((u.c1 + ${o.group - 1}u) / ${o.group}u * ${o.keep}u + ${vpw - 1}u) / ${vpw}u, u.idxStride);`;
}

/**
 * WGSL opening a lane version: its weight row `r` and first activation row `m0` (ubo: one
 * dispatch per m-tile; storage: the invocation index covers both), and for storage the offsets
 * `xr0..` of its activation rows in X.
 */
function laneHead(o: SparseLinearOptions): string {
  if (o.x === "ubo") {
    return `let r = wid * ${o.workgroupSize}u + lid;
  if (r >= u.rows) { return; }
  let m0 = u.m0;`;
  }
  const xr = Array.from({ length: o.tm }, (_, i) => `let xr${i} = min(m0 + ${i}u, u.M - 1u) * u.K;`);
  return `let t = wid * ${o.workgroupSize}u + lid;
  let r = t % u.rows;
  let m0 = (t / u.rows) * ${o.tm}u;
  if (m0 >= u.M) { return; }
  ${xr.join("\n  ")}`;
}

function laneKernel(o: SparseLinearOptions): string {
  const { tm } = o;
  const { pre, entries } = decodeUnit(o);
  const nm = o.format === "nm";
  const mac: string[] = [];
  entries.forEach(({ v, col }, q) => {
    if (o.x === "ubo") {
      const slotMax = sparseSlotCols(tm) - 1;
      if (o.segmented) {
        mac.push(
          `{ let l = ${col} - u.c0; let cl = min(l, ${slotMax}u); ${
            multiplyAdd(o, `select(0.0, ${v}, l < u.c1 - u.c0)`, "cl")
          } }`,
        );
      } else {
        const c = nm ? `min(${col}, ${slotMax}u)` : col;
        mac.push(`{ let c${q} = ${c}; ${multiplyAdd(o, v, `c${q}`)} }`);
      }
    } else {
      const c = nm ? `min(${col}, u.K - 1u)` : col;
      mac.push(tm === 1 ? multiplyAdd(o, v, c) : `{ let c = ${c}; ${multiplyAdd(o, v, "c")} }`);
    }
  });
  const head = laneHead(o);
  return `${bindings(o)}
${o.segmented && !nm ? searchFns(o) : ""}
@compute @workgroup_size(${o.workgroupSize})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  ${head}
  ${rowRange(o)}
  ${accumulators(o)}
  for (var j = ja; j < jb; j++) {
    ${pre}
    ${mac.join("\n    ")}
  }
  ${storeRows(o)}
}`;
}

/**
 * Texels per group of the delta layout: the group's values (4 f32 or 8 f16 a texel), then one texel
 * of deltas (16 bytes or 32 nibbles): 8-bit deltas f32 5, f16 3; 4-bit deltas f32 9, f16 5.
 */
export function deltaGroupTexels(dtype: GpuDType, bits: 4 | 8 = 8): number {
  return deltaGroupEntries(bits) / (dtype === "f32" ? 4 : 8) + 1;
}

/**
 * WGSL of one group `j` of the delta layout: `c` (a `var`, the running column relative to X's
 * row) advances by each entry's delta, then `mac(value)` multiplies and adds at column `c`.
 */
function deltaGroupBody(o: SparseLinearOptions, mac: (v: string) => string): string[] {
  const C = ["x", "y", "z", "w"];
  const bits = o.deltaBits ?? 8, G = deltaGroupEntries(bits);
  const gt = deltaGroupTexels(o.dtype, bits);
  const fetch = (i: string) => o.wtex ? texel(i) : `E[${i}]`;
  const body: string[] = [`let t = ${gt}u * j;`];
  const vals: string[] = [];
  for (let i = 0; i < gt - 1; i++) body.push(`let v${i} = ${fetch(`t + ${i}u`)};`);
  if (o.dtype === "f32") {
    for (let q = 0; q < G; q++) vals.push(`bitcast<f32>(v${q >> 2}.${C[q & 3]})`);
  } else {
    for (let w = 0; w < G / 2; w++) body.push(`let h${w} = unpack2x16float(v${w >> 2}.${C[w & 3]});`);
    for (let q = 0; q < G; q++) vals.push(`h${q >> 1}.${q & 1 ? "y" : "x"}`);
  }
  body.push(`let d = ${fetch(`t + ${gt - 1}u`)};`);
  const per = 32 / bits, mask = (1 << bits) - 1; // deltas per word
  for (let q = 0; q < G; q++) {
    const dw = `d.${C[Math.floor(q / per)]}`, sh = bits * (q % per);
    const dx = sh === 0
      ? `(${dw} & ${mask}u)`
      : sh + bits === 32
      ? `(${dw} >> ${sh}u)`
      : `((${dw} >> ${sh}u) & ${mask}u)`;
    body.push(`c += ${dx}; ${mac(vals[q])}`);
  }
  return body;
}

/**
 * The delta layout's lane versions: one invocation per weight row and `tm` activation rows; for
 * each 4096-column block of the column segment (ubo) or of the row (storage), a running column
 * starts at the block and each entry adds its delta, then gathers X at it.
 */
function deltaKernel(o: SparseLinearOptions): string {
  if (o.variant !== "lane") throw new Error("sparse delta layout: deltaKernel is the lane version");
  const body = deltaGroupBody(o, (v) => multiplyAdd(o, v, "c"));
  const head = laneHead(o);
  const B = SPARSE_DELTA_BLOCK;
  return `${bindings(o)}
@compute @workgroup_size(${o.workgroupSize})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  ${head}
  // Blocks [b0, b1) of this column segment (u.idxStride: blocks per row); P[r * nb + b] is the
  // first group of block b of row r, P[r * nb + b + 1] its end.
  let pb = r * u.idxStride;
  let b0 = u.c0 / ${B}u;
  let b1 = min(u.idxStride, (u.c1 + ${B - 1}u) / ${B}u);
  ${accumulators(o)}
  for (var b = b0; b < b1; b++) {
    var c = b * ${B}u - u.c0; // running column, relative to the slot
    let jb = P[pb + b + 1u];
    for (var j = P[pb + b]; j < jb; j++) {
      ${body.join("\n      ")}
    }
  }
  ${storeRows(o)}
}`;
}

/**
 * The wg version (GPU GEMV): a workgroup per (weight row, activation row), lanes striding the row's
 * units so consecutive lanes read consecutive ones. A delta-layout group starts from its stored
 * start column (the `rows * blocks + 1` offsets in P are followed by a start column a group).
 */
function wgKernel(o: SparseLinearOptions): string {
  const WG = o.workgroupSize;
  const delta = o.format === "unstructured" && o.layout === "delta";
  let range: string, loop: string;
  if (delta) {
    range = `let ja = P[r * u.idxStride];
  let jb = P[(r + 1u) * u.idxStride];
  let sb = u.rows * u.idxStride + 1u; // start columns follow the offsets`;
    loop = `var c = P[sb + j];
    ${deltaGroupBody(o, (v) => `acc += ${v} * X[xr + c];`).join("\n    ")}`;
  } else {
    const { pre, entries } = decodeUnit(o);
    const nm = o.format === "nm";
    const mac = entries.map(({ v, col }) => `acc += ${v} * X[xr + ${nm ? `min(${col}, u.K - 1u)` : col}];`);
    range = rowRange(o);
    loop = `${pre}
    ${mac.join("\n    ")}`;
  }
  const b = o.bias ? " + B[u.colOffset + r]" : "";
  return `${bindings(o)}
var<workgroup> part: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let r = wid % u.rows;
  let m = wid / u.rows;
  if (m >= u.M) { return; } // a 2-D fold of the grid can add workgroups past rows * M
  let xr = m * u.K;
  ${range}
  var acc = 0.0;
  for (var j = ja + lid; j < jb; j += ${WG}u) {
    ${loop}
  }
  part[lid] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { part[lid] += part[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let yi = m * u.ldY + u.colOffset + r;
    if (u.accumulate != 0u) { Y[yi] = Y[yi] + part[0]; } else { Y[yi] = part[0]${b}; }
  }
}`;
}

/**
 * WGSL for a sparse linear version (see the module doc).
 *
 * @example WGSL of the GPU GEMV version
 * ```ts
 * import { type SparseLinearOptions, sparseLinearWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * // The GPU GEMV version: a workgroup of 64 lanes per (weight row, activation row).
 * const o: SparseLinearOptions = {
 *   format: "unstructured", dtype: "f32", variant: "wg", x: "storage", tm: 1, segmented: false, bias: false,
 *   wtex: false, layout: "groups", keep: 0, group: 0, workgroupSize: 64,
 * };
 * const wgsl = sparseLinearWgsl(o);
 * assert.match(wgsl, /@compute @workgroup_size\(64\)/);
 * assert.equal(wgsl.match(/@binding\(\d\)/g)!.length, 5); // uniforms, X, P, E, Y
 * assert.equal(sparseLinearWgsl({ ...o, bias: true }).match(/@binding\(\d\)/g)!.length, 6);
 * // Combinations no version implements are refused: the wg version reads X from storage.
 * assert.throws(() => sparseLinearWgsl({ ...o, x: "ubo" }));
 * ```
 */
export function sparseLinearWgsl(o: SparseLinearOptions): string {
  if (![1, 4, 8, 16].includes(o.tm) || (o.variant === "wg" && o.tm !== 1)) {
    throw new Error(`sparse linear: tm must be 1, 4, 8 or 16 (1 for the wg version), got ${o.tm}`);
  }
  if (o.variant === "wg") {
    if (o.x !== "storage" || o.segmented) {
      throw new Error("sparse wg version reads X from storage, unsegmented");
    }
    return wgKernel(o);
  }
  if (o.x === "storage" && o.segmented) throw new Error("sparse lane version from storage is unsegmented");
  if (o.format === "unstructured" && o.layout === "delta") return deltaKernel(o);
  return laneKernel(o);
}

/**
 * X into uniform slots: slot `mt * nseg + s` (64 KiB each) holds activation rows
 * [mt * tm, mt * tm + tm) and columns [s * slotCols, s * slotCols + slotCols); `tm` = 1: column c
 * at element c; `tm` = 4: column c is the vec4 of the 4 rows. Zero outside X.
 * Uniforms: M, K, slotCols, nseg, total (vec4s to write), mtBase (m-tile of the first slot).
 * Bindings: 1 X f32 [M, K], 2 slots.
 *
 * @example WGSL that packs X for 4 activation rows a slot
 * ```ts
 * import { sparsePackXWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const wgsl = sparsePackXWgsl(4); // 4 activation rows a slot, each column a vec4 of the 4 rows
 * assert.match(wgsl, /@compute @workgroup_size\(64\)/);
 * assert.equal(wgsl.match(/@binding\(\d\)/g)!.length, 3); // uniforms, X, the slots
 * assert.match(wgsl, /var<storage, read_write> XT: array<vec4<f32>>/);
 * ```
 */
export function sparsePackXWgsl(tm: 1 | 4): string {
  const vecs = SPARSE_SLOT_FLOATS / 4;
  const value = tm === 4
    ? "let c = c0 + w; let m = mt * 4u; let v = vec4<f32>(xv(m, c, c1), xv(m + 1u, c, c1), xv(m + 2u, c, c1), xv(m + 3u, c, c1));"
    : "let c = c0 + w * 4u; let m = mt; let v = vec4<f32>(xv(m, c, c1), xv(m, c + 1u, c1), xv(m, c + 2u, c1), xv(m, c + 3u, c1));";
  return `struct U { M: u32, K: u32, slotCols: u32, nseg: u32, total: u32, mtBase: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> XT: array<vec4<f32>>;
// X[m, col] for col < end (the segment's end), else 0.
fn xv(m: u32, col: u32, end: u32) -> f32 {
  let ok = m < u.M && col < min(u.K, end);
  return select(0.0, X[min(m, u.M - 1u) * u.K + min(col, u.K - 1u)], ok);
}
@compute @workgroup_size(${SPARSE_PACKX_WG})
fn main(${WORKGROUP_ID_ARGS}) {
  ${LINEAR_WID}
  let q = wid * ${SPARSE_PACKX_WG}u + lid;
  if (q >= u.total) { return; }
  let slot = q / ${vecs}u;
  let w = q % ${vecs}u;
  let mt = u.mtBase + slot / u.nseg;
  let c0 = (slot % u.nseg) * u.slotCols;
  let c1 = c0 + u.slotCols;
  ${value}
  XT[q] = v;
}`;
}

/**
 * Pipeline cache key of {@linkcode sparsePackXWgsl} for `tm` activation rows per slot.
 *
 * @example One key per rows-per-slot count
 * ```ts
 * import { sparsePackXKey, sparsePackXWgsl } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * // One packing pipeline per rows-per-slot count, cached under its key.
 * assert.equal(sparsePackXKey(4), sparsePackXKey(4));
 * assert.notEqual(sparsePackXKey(1), sparsePackXKey(4));
 * assert.notEqual(sparsePackXWgsl(1), sparsePackXWgsl(4)); // as their WGSL differs
 * ```
 */
export function sparsePackXKey(tm: 1 | 4): string {
  return `sparse/packx/tm${tm}`;
}
