/**
 * Y = X W^T (+ b) with a sparse W (src/sparse/upload.ts), choosing the kernel version from the
 * adapter and M (kernels/sparse_linear.ts):
 * - lavapipe (and CPU adapters other than SwiftShader; `gpu.cpu`): `lane` + `ubo`, one
 *   invocation per weight row, X copied into 64 KiB uniform slots first (one small dispatch; at
 *   M = 1 buffer copies, or none when X was made by `Gpu.gemvInput`: it is bound as the slot); `tm` = 1 for
 *   M = 1, else the smallest tile of 4, 8 or 16 activation rows that holds M (one dispatch per
 *   tile and column segment; 16-row tiles for larger M); weights from textures when uploaded so
 *   (uploadSparse's default there), unstructured weights in the column-delta layout
 *   (uploadSparse's default there). Measured on lavapipe, 11008x4096 f32 GEMV at 70%: X gathered
 *   from a uniform slot 24 ms, from storage 41 ms; weight groups from a texture 17-25 ms, from
 *   storage 27-29; the dense GEMV 55-125 ms (ARCHITECTURE.md).
 * - SwiftShader: `lane` + `storage` (4 activation rows per invocation for M > 1), weights in
 *   storage buffers in the CSR-groups layout (`gpu.cpu`: its JIT reads storage faster than
 *   textures or uniform gathers, and decodes groups faster than deltas; 11008x4096 f32 GEMV at
 *   70%: 37 ms against 81 on the lavapipe path).
 * - GPUs: `wg` (a workgroup per weight row, coalesced group loads, shared-memory reduction) for
 *   M = 1, `lane` + `storage` with 4 activation rows per invocation for M > 1; weights in
 *   storage, unstructured ones in the column-delta layout with each group's start column (which
 *   the wg version needs; a delta matrix uploaded without them runs `lane` for M = 1 too).
 * @module
 */
import { CPU_LOOP_LIMIT, packUniforms } from "../../kernels/common.ts";
import {
  deltaGroupEntries,
  SPARSE_DELTA_BLOCK,
  SPARSE_GROUP,
  SPARSE_PACKX_WG,
  SPARSE_SLOT_BYTES,
  SPARSE_SLOT_FLOATS,
  sparseLinearKey,
  type SparseLinearOptions,
  sparseLinearWgsl,
  sparseLinearWorkgroups,
  sparseLoopSteps,
  sparsePackXKey,
  sparsePackXWgsl,
  sparseQuads,
  sparseSlotCols,
  type SparseVariant,
  type SparseXSource,
} from "../../kernels/sparse_linear.ts";
import { ArgumentError, UnsupportedError } from "../errors.ts";
import { type Binding, type Gpu, readableAsUniformX } from "../gpu/device.ts";
import { DeviceScratch } from "../gpu/scratch.ts";
import type { GpuSparseMatrix } from "../sparse/upload.ts";
import { checkBuffer, checkCounts, checkDistinct, checkOneOf } from "./check.ts";

/**
 * Force a version (tests cover every path on one adapter with these).
 *
 * @example Force each kernel version in turn: all compute the same product
 * ```ts
 * import {
 *   Gpu, packUnstructured, releaseSparse, sparseLinear, type SparseLinearOverride, uploadSparse,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const W = new Float32Array([1, 0, 2, 0, 0, 3, 0, -1, 0, 0, 4, 0]); // [2, 6]
 * const X = new Float32Array([1, 2, 3, 4, 5, 6, 0, 1, 0, 1, 0, 1, 2, 2, 2, 2, 2, 2]); // [3, 6]
 * const w = uploadSparse(gpu, packUnstructured(W, 2, 6), { layout: "groups" }); // every version reads groups
 * const x = gpu.upload(X, "x"), y = gpu.buffer(3 * 2 * 4, "y");
 * const versions: SparseLinearOverride[] = [
 *   { variant: "wg" },
 *   { variant: "lane", x: "storage", tm: 1 },
 *   { variant: "lane", x: "ubo", tm: 4 },
 * ];
 * for (const o of versions) { // every version computes the same Y [3, 2]
 *   gpu.write(y, new Float32Array(3 * 2)); // clear y: each version must write it
 *   sparseLinear(gpu, x, w, y, 3, undefined, o);
 *   assert.deepEqual(await gpu.readF32(y), new Float32Array([1 + 6 + 18, -2 + 20, 3, -1, 12, 6]));
 * }
 * releaseSparse(gpu, w);
 * gpu.release(x, y);
 * gpu.destroy();
 * ```
 */
export interface SparseLinearOverride {
  /** Kernel version. */
  variant?: SparseVariant;
  /** Where the kernel reads X. */
  x?: SparseXSource;
  /** Activation rows per invocation (lane only; 8 and 16 in quads of 4, see SparseLinearOptions.tm). */
  tm?: 1 | 4 | 8 | 16;
  /** Uniform-X m-tiles packed per turn (default: as many as one binding holds; tests force turns). */
  slotTiles?: number;
}

/**
 * Kernel options for Y[M, N] = X[M, K] W^T on this adapter.
 *
 * @example The kernel options for a GEMV and for a GEMM on this adapter
 * ```ts
 * import {
 *   chooseSparseLinear, Gpu, packUnstructured, releaseSparse, sparseLinearKey, sparseLinearWgsl,
 *   uploadSparse,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadSparse(gpu, packUnstructured(new Float32Array([0, 1, 2, 0, 0, 3]), 2, 3));
 * const gemv = chooseSparseLinear(gpu, 1, w, false); // one activation row
 * const gemm = chooseSparseLinear(gpu, 9, w, true); // 9 activation rows, with a bias
 * // A GEMV: one invocation per weight row on CPU adapters, a workgroup per weight row on GPUs.
 * assert.equal(gemv.variant, gpu.isCpu ? "lane" : "wg");
 * // A GEMM: one invocation per weight row and a tile of activation rows: on CPU adapters the
 * // smallest of 4, 8 or 16 that holds all 9 where X is read from uniform slots (lavapipe: each
 * // decoded weight serves the whole tile); where it is read from storage, the CPU profile's
 * // rows (SwiftShader: 8), or 4 on GPUs.
 * const tm = gpu.cpu?.uniformX ? 16 : gpu.cpu?.sparseStorageRows ?? 4;
 * assert.deepEqual([gemm.variant, gemm.tm, gemm.bias], ["lane", tm, true]);
 * // The options name the pipeline and generate its WGSL:
 * assert.notEqual(sparseLinearKey(gemv), sparseLinearKey(gemm));
 * assert.match(sparseLinearWgsl(gemm), /@binding\(5\)/); // the bias
 * releaseSparse(gpu, w);
 * gpu.destroy();
 * ```
 */
export function chooseSparseLinear(
  gpu: Gpu,
  M: number,
  w: GpuSparseMatrix,
  bias: boolean,
  o: SparseLinearOverride = {},
): SparseLinearOptions {
  const delta = w.format === "unstructured" && w.layout === "delta";
  // The wg version's lanes each take a group of the delta layout, from its stored start column.
  const variant = o.variant ?? (gpu.isCpu || M > 1 || (delta && !w.starts) ? "lane" : "wg");
  const x: SparseXSource = variant === "wg" ? "storage" : o.x ?? (gpu.cpu?.uniformX ? "ubo" : "storage");
  if (delta && variant === "wg" && !w.starts) {
    throw new ArgumentError(
      "sparseLinear: the wg version of the delta layout needs the groups' start columns (uploadSparse starts: true)",
    );
  }
  // Uniform X (lavapipe): the smallest tile of 4, 8 or 16 rows that holds M, as a row's
  // weights are decoded once per tile (lavapipe, 8x11008x4096 f32 GEMM, 50% / 70%: 39 / 25 ms
  // with 8 rows against 51 / 30 with two tiles of 4). Storage X: the CPU profile's rows
  // (SwiftShader 8), else 4 (GPUs, unmeasured).
  const storageRows = M <= 4 ? 4 : gpu.cpu?.sparseStorageRows ?? 4;
  const rowTile = (): 1 | 4 | 8 | 16 =>
    M === 1 ? 1 : x === "storage" ? storageRows : M <= 4 ? 4 : M <= 8 ? 8 : 16;
  const tm = variant === "wg" ? 1 : o.tm ?? rowTile();
  const nm = w.format === "nm";
  const segmented = x === "ubo" && w.cols > sparseSlotCols(tm, nm ? w.group : 1);
  return {
    format: w.format,
    dtype: w.dtype,
    variant,
    x,
    tm,
    segmented,
    bias,
    wtex: w.texture,
    layout: delta ? "delta" : "groups",
    ...(delta ? { deltaBits: w.deltaBits === 4 ? 4 : 8 } : {}),
    keep: nm ? w.keep : 0,
    group: nm ? w.group : 0,
    workgroupSize: variant === "wg" || x === "storage" ? 64 : 8,
  };
}

/** Uniform X slots per device (STORAGE | UNIFORM), grown on demand. */
const xSlots = new DeviceScratch(
  "sparse-x-slots",
  () => GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
);

/**
 * Free the uniform X slots kept for this device (they are otherwise kept until it is destroyed).
 *
 * @example Free the uniform X slots; the next call allocates them again
 * ```ts
 * import {
 *   Gpu, packUnstructured, releaseSparse, releaseSparseScratch, sparseLinear, uploadSparse,
 * } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const w = uploadSparse(gpu, packUnstructured(new Float32Array([2, 0, 0, 3]), 2, 2), { layout: "groups" });
 * const x = gpu.upload(new Float32Array([5, 7]), "x"), y = gpu.buffer(2 * 4, "y");
 * // This version copies X into 64 KiB uniform slots, kept per device for the next calls.
 * const ubo = { variant: "lane", x: "ubo" } as const;
 * sparseLinear(gpu, x, w, y, 1, undefined, ubo);
 * assert.deepEqual(await gpu.readF32(y), new Float32Array([10, 21]));
 * releaseSparseScratch(gpu); // free the slots now rather than with the device
 * releaseSparseScratch(gpu); // nothing left: a no-op
 * gpu.write(x, new Float32Array([1, 1]));
 * sparseLinear(gpu, x, w, y, 1, undefined, ubo); // the next call allocates them again
 * assert.deepEqual(await gpu.readF32(y), new Float32Array([2, 3]));
 * releaseSparse(gpu, w);
 * gpu.release(x, y);
 * gpu.destroy();
 * ```
 */
export function releaseSparseScratch(gpu: Gpu): void {
  xSlots.release(gpu);
}

/**
 * Record Y[M, N] = X[M, K] W^T (+ bias) into the current batch.
 * @param x f32 [M, K]; @param w sparse [N, K]; @param y f32 [M, N]; @param bias f32 [N].
 *
 * @example Y = X W^T + b for 2 activation rows and a pruned 3 x 5 weight
 * ```ts
 * import { Gpu, packUnstructured, releaseSparse, sparseLinear, uploadSparse } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const N = 3, K = 5, M = 2; // W [N, K] with most weights pruned, X [M, K]
 * const W = new Float32Array([1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0.5, 0, -1, 0, 3]);
 * const X = new Float32Array([1, 2, 3, 4, 5, -1, 0, 1, 0, 2]);
 * const w = uploadSparse(gpu, packUnstructured(W, N, K), { label: "w" });
 * const x = gpu.upload(X, "x"), b = gpu.upload(new Float32Array([10, 20, 30]), "b");
 * const y = gpu.buffer(M * N * 4, "y");
 * sparseLinear(gpu, x, w, y, M, b); // records Y[M, N] = X W^T + b into the current batch
 * // Row 0: [1 + 8, 0, 0.5 - 3 + 15] + b; row 1: [-1, 0, -0.5 - 1 + 6] + b.
 * assert.deepEqual(await gpu.readF32(y), new Float32Array([19, 20, 42.5, 9, 20, 34.5]));
 * releaseSparse(gpu, w);
 * gpu.release(x, y, b);
 * gpu.destroy();
 * ```
 */
export function sparseLinear(
  gpu: Gpu,
  x: GPUBuffer,
  w: GpuSparseMatrix,
  y: GPUBuffer,
  M: number,
  bias?: GPUBuffer,
  override?: SparseLinearOverride,
): void {
  if (!Number.isInteger(M) || M < 1) {
    throw new ArgumentError(`sparseLinear: M must be a positive integer, got ${M}`);
  }
  const N = w.rows, K = w.cols;
  if (w.chunks.length === 0) {
    // Released (releaseSparse empties chunks): recording nothing would leave y stale.
    throw new ArgumentError(`sparseLinear: the ${N}x${K} sparse weight has no data on the GPU (released)`);
  }
  if (w.dtype === "f16" && !gpu.f16) {
    throw new UnsupportedError("sparseLinear: the weight is f16 but this device has no shader-f16");
  }
  if (override?.variant !== undefined) {
    checkOneOf("sparseLinear", "override.variant", override.variant, ["lane", "wg"]);
  }
  if (override?.x !== undefined) checkOneOf("sparseLinear", "override.x", override.x, ["ubo", "storage"]);
  if (override?.tm !== undefined && ![1, 4, 8, 16].includes(override.tm)) {
    throw new ArgumentError(`sparseLinear: override.tm must be 1, 4, 8 or 16, got ${override.tm}`);
  }
  if (override?.slotTiles !== undefined) {
    checkCounts("sparseLinear", { "override.slotTiles": override.slotTiles });
  }
  const opts = chooseSparseLinear(gpu, M, w, !!bias, override);
  // Mesa's loop limit (ARCHITECTURE.md): a row's units must fit one invocation's 65535 steps.
  // Unstructured rows (<= 65536 u16 columns) always do; only very wide N:M rows can fail.
  // delta: per block of a slot at most 4096 entries + 4096 / (2^bits - 1) escapes (8-bit: 257
  // groups of 16; 4-bit: 137 groups of 32), plus a step.
  const deltaBlockGroups = (bits: 4 | 8) =>
    Math.ceil(
      (SPARSE_DELTA_BLOCK + Math.ceil(SPARSE_DELTA_BLOCK / ((1 << bits) - 1))) / deltaGroupEntries(bits),
    );
  const units = w.format === "nm"
    ? w.idxStride
    : w.layout === "delta"
    ? Math.ceil((opts.x === "ubo" ? Math.min(K, sparseSlotCols(opts.tm)) : K) / SPARSE_DELTA_BLOCK) *
      (deltaBlockGroups(opts.deltaBits ?? 8) + 2)
    : Math.ceil(K / SPARSE_GROUP[w.dtype]);
  if (gpu.isCpu && sparseLoopSteps(opts, units) > CPU_LOOP_LIMIT) {
    throw new UnsupportedError(
      `sparseLinear: rows of ${units} units exceed lavapipe's ${CPU_LOOP_LIMIT}-step loop limit for ${opts.variant}`,
    );
  }
  checkBuffer("sparseLinear", "x", x, M * K * 4, `X [M ${M}, K ${K}] f32`);
  checkBuffer("sparseLinear", "y", y, M * N * 4, `Y [M ${M}, N ${N}] f32`);
  if (bias) checkBuffer("sparseLinear", "bias", bias, N * 4, `the bias [N ${N}] f32`);
  checkDistinct("sparseLinear", { y }, { x, bias });
  const pipe = gpu.pipeline(sparseLinearKey(opts), () => sparseLinearWgsl(opts));
  // The kernels' u.idxStride: blocks per row (delta layout) or N:M index words per row.
  const idxStride = w.layout === "delta" ? w.blocks : w.idxStride;
  // Bindings 2-4 (and the bias, last): the chunk's offsets or index words, its weights, Y.
  const weightBindings = (c: GpuSparseMatrix["chunks"][number], xSlotsAfterY: Binding[] = []): Binding[] => {
    // Gpu.dispatch passes a non-buffer binding (the texture view) through as the entry's resource.
    const weights = c.data ?? (c.texView as unknown as Binding);
    const b: Binding[] = [c.ptr ?? c.idx!, weights, y, ...xSlotsAfterY];
    if (bias) b.push(bias);
    return b;
  };
  if (opts.x === "storage") {
    for (const c of w.chunks) {
      const u = packUniforms([
        c.rows,
        M,
        K,
        N,
        c.rowStart,
        0,
        0,
        K,
        0,
        idxStride,
      ]);
      gpu.dispatch(pipe, [x, ...weightBindings(c)], u, sparseLinearWorkgroups(opts, c.rows, M));
    }
    return;
  }
  // X in uniform slots: slot ((t * quads + k) * nseg + s) holds quad k (4 activation rows; one row
  // when tm = 1) of m-tile t of this turn, column segment s.
  const { tm } = opts;
  const quads = sparseQuads(tm), packTm = tm === 1 ? 1 : 4;
  const slotCols = sparseSlotCols(tm, w.format === "nm" ? w.group : 1);
  const nseg = Math.max(1, Math.ceil(K / slotCols));
  const mtiles = Math.ceil(M / tm);
  // Slots for as many m-tiles as one storage binding holds; more tiles reuse them in turns.
  const tileBytes = quads * nseg * SPARSE_SLOT_BYTES;
  const fit = Math.floor(gpu.maxBinding / tileBytes);
  const tilesPerTurn = Math.max(1, Math.min(mtiles, fit, override?.slotTiles ?? Infinity));
  // One row in one slot, and X can be bound as that slot (Gpu.gemvInput): read it in place,
  // unless a narrower last N:M group's unused slots would read columns past K (the packed slot
  // holds zeros there; the buffer could hold Inf or NaN).
  const inPlace = M === 1 && nseg === 1 && readableAsUniformX(x) && (w.format !== "nm" || K % w.group === 0);
  const slots = inPlace ? x : xSlots.get(gpu, tilesPerTurn * tileBytes);
  const packPipe = inPlace ? null : gpu.pipeline(sparsePackXKey(packTm), () => sparsePackXWgsl(packTm));
  const slot = (t: number, k: number, s: number): Binding => ({
    buffer: slots,
    offset: ((t * quads + k) * nseg + s) * SPARSE_SLOT_BYTES,
    size: SPARSE_SLOT_BYTES,
  });
  for (let mt0 = 0; mt0 < mtiles; mt0 += tilesPerTurn) {
    const tiles = Math.min(tilesPerTurn, mtiles - mt0);
    // Quads past M are packed too (as zeros): the kernel reads every quad of its tile.
    const total = tiles * quads * nseg * (SPARSE_SLOT_FLOATS / 4);
    if (packPipe && M === 1 && packTm === 1 && (x.usage & GPUBufferUsage.COPY_SRC) !== 0) {
      // One activation row in slots of one row: X's segments as they are, zeros after K; copies
      // instead of the packing dispatch (a dispatch costs lavapipe ~0.15 ms, more than the copy).
      for (let s = 0; s < nseg; s++) {
        const c0 = s * slotCols, n = Math.min(K, c0 + slotCols) - c0;
        gpu.copy(x, c0 * 4, slots, s * SPARSE_SLOT_BYTES, n * 4);
        if (n < SPARSE_SLOT_FLOATS) {
          gpu.commandEncoder().clearBuffer(
            slots,
            s * SPARSE_SLOT_BYTES + n * 4,
            (SPARSE_SLOT_FLOATS - n) * 4,
          );
        }
      }
    } else if (packPipe) {
      gpu.dispatch(
        packPipe,
        [x, { buffer: slots, offset: 0, size: tiles * tileBytes }],
        packUniforms([M, K, slotCols, nseg, total, mt0 * quads]),
        Math.ceil(total / SPARSE_PACKX_WG),
      );
    }
    for (let s = 0; s < nseg; s++) {
      const c0 = s * slotCols, c1 = Math.min(K, c0 + slotCols);
      for (let t = 0; t < tiles; t++) {
        const more = Array.from({ length: quads - 1 }, (_, k) => slot(t, k + 1, s));
        for (const c of w.chunks) {
          const u = packUniforms([
            c.rows,
            M,
            K,
            N,
            c.rowStart,
            (mt0 + t) * tm,
            c0,
            c1,
            s > 0 ? 1 : 0,
            idxStride,
          ]);
          gpu.dispatch(
            pipe,
            [slot(t, 0, s), ...weightBindings(c, more)],
            u,
            sparseLinearWorkgroups(opts, c.rows, M),
          );
        }
      }
    }
  }
}
