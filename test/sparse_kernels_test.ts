/**
 * Sparse linear kernels (unstructured and N:M, f32 and f16 values) against a float64 reference on
 * seeded random, uneven shapes: rows and columns that divide no group or tile, empty rows, fully
 * dense rows, weights split into row chunks, X wider than one uniform slot (column segments), and
 * every kernel version forced on this adapter.
 */
import assert from "node:assert/strict";
import { Gpu } from "../src/gpu/device.ts";
import {
  chooseSparseLinear,
  releaseSparseScratch,
  sparseLinear,
  type SparseLinearOverride,
} from "../src/ops/sparse.ts";
import { packNM, packUnstructured, type SparseMatrix, unpackSparse } from "../src/sparse/format.ts";
import { releaseSparse, uploadSparse } from "../src/sparse/upload.ts";
import { type SparseGpuLayout, sparseLinearWgsl, sparseSlotCols } from "../kernels/sparse_linear.ts";
import { ArgumentError, UnsupportedError } from "../src/errors.ts";
import { assertClose, randomArray, refLinear, rng } from "./ref/kernels_ref.ts";

const gpu = await Gpu.create();
const dtypes = gpu.f16 ? ["f32", "f16"] as const : ["f32"] as const;

/** Random [rows, cols] with per-row sparsity in [0, 1); row 1 empty, row 2 fully dense (when present). */
function randomSparse(rows: number, cols: number, seed: number, sparsity = 0.7): Float32Array {
  const W = randomArray(rows * cols, seed);
  const r = rng(seed + 99);
  for (let i = 0; i < rows; i++) {
    const s = i === 1 ? 1 : i === 2 ? 0 : sparsity + (r() - 0.5) * 0.3;
    for (let c = 0; c < cols; c++) if (r() < s) W[i * cols + c] = 0;
  }
  return W;
}

/** Random N:M-sparse [rows, cols]: `keep` random nonzeros per group of `group`; row 1 empty. */
function randomNM(rows: number, cols: number, keep: number, group: number, seed: number): Float32Array {
  const W = randomArray(rows * cols, seed);
  const r = rng(seed + 7);
  for (let i = 0; i < rows; i++) {
    for (let c0 = 0; c0 < cols; c0 += group) {
      const width = Math.min(group, cols - c0);
      const idx = Array.from({ length: width }, (_, j) => j).sort(() => r() - 0.5);
      const kept = i === 1 ? 0 : keep;
      for (let q = kept; q < width; q++) W[i * cols + c0 + idx[q]] = 0;
    }
  }
  return W;
}

async function check(
  s: SparseMatrix,
  M: number,
  seed: number,
  o: {
    override?: SparseLinearOverride;
    chunkRows?: number;
    bias?: boolean;
    texture?: boolean;
    layout?: SparseGpuLayout;
    deltaBits?: 4 | 8;
    starts?: boolean;
  } = {},
): Promise<void> {
  const N = s.rows, K = s.cols;
  const X = randomArray(M * K, seed), b = randomArray(N, seed + 1);
  // The wg version reads the delta layout (the default) only with the groups' start columns.
  const starts = o.starts ?? (o.override?.variant === "wg" ? true : undefined);
  const w = uploadSparse(gpu, s, {
    maxRowsPerChunk: o.chunkRows,
    label: "w",
    texture: o.texture,
    layout: o.layout,
    deltaBits: o.deltaBits,
    starts,
  });
  if (o.deltaBits && w.layout === "delta") assert.equal(w.deltaBits, o.deltaBits);
  if (starts !== undefined && w.layout === "delta") assert.equal(w.starts, starts);
  if (o.texture !== undefined) assert.equal(w.texture, o.texture);
  if (o.layout && s.format === "unstructured") assert.equal(w.layout, o.layout);
  if (o.chunkRows) assert(w.chunks.length > 1 || N <= o.chunkRows);
  const x = gpu.upload(X, "x"), y = gpu.buffer(M * N * 4, "y");
  gpu.write(y, new Float32Array(M * N).fill(NaN)); // every output must be written
  const bias = o.bias ? gpu.upload(b, "b") : undefined;
  sparseLinear(gpu, x, w, y, M, bias, o.override);
  const got = await gpu.readF32(y, 0, M * N);
  const want = refLinear(X, unpackSparse(s), M, N, K, o.bias ? b : undefined);
  const opts = chooseSparseLinear(gpu, M, w, !!bias, o.override);
  const fmt = s.format === "nm" ? `${s.keep}:${s.group}` : "unstructured";
  assertClose(got, want, 1e-5 * Math.sqrt(K), 1e-4, `sparse ${fmt} ${M}x${N}x${K} ${JSON.stringify(opts)}`);
  releaseSparse(gpu, w);
  gpu.release(x, y, bias);
}

const VERSIONS: SparseLinearOverride[] = [
  {}, // the adapter's choice
  { variant: "lane", x: "ubo", tm: 1 },
  { variant: "lane", x: "ubo", tm: 4 },
  { variant: "lane", x: "storage", tm: 4 },
  { variant: "lane", x: "storage", tm: 1 },
  { variant: "wg" },
];

/**
 * Tiles of 8 and 16 activation rows (a quad of 4 rows per accumulator and, with `ubo`, per X
 * slot), each with its adapter's weight source only (they compile slowly on lavapipe).
 */
const TILES: { override: SparseLinearOverride; texture: boolean }[] = [
  { override: { variant: "lane", x: "ubo", tm: 8 }, texture: true },
  { override: { variant: "lane", x: "ubo", tm: 16 }, texture: true },
  { override: { variant: "lane", x: "storage", tm: 8 }, texture: false },
];

Deno.test("sparse unstructured: every version, f32 and f16 values, uneven shapes", async () => {
  for (const dtype of dtypes) {
    for (const [N, K] of [[37, 45], [13, 300], [9, 7]]) {
      const s = packUnstructured(randomSparse(N, K, N * 31 + K), N, K, dtype);
      for (const override of VERSIONS) {
        for (const texture of [false, true]) {
          for (const M of [1, 3, 9]) {
            await check(s, M, M + N, { override, texture, layout: "groups" });
            for (const deltaBits of [4, 8] as const) {
              // Start columns stored (the GPU default; the wg version needs them) or not (CPU).
              const starts = override.variant === "wg" || M === 3;
              await check(s, M, M + N, { override, texture, layout: "delta", deltaBits, starts });
            }
          }
        }
      }
      for (const { override, texture } of TILES) {
        for (const M of [3, 9]) { // a partial tile; with tm 8, a full one and a partial second
          await check(s, M, M + N, { override, texture, layout: "groups" });
          for (const deltaBits of [4, 8] as const) {
            await check(s, M, M + N, { override, texture, layout: "delta", deltaBits });
          }
        }
      }
    }
  }
});

/** keep, group, rows, cols. */
const NM_CASES = [[2, 4, 21, 64], [1, 4, 7, 36], [3, 8, 11, 72], [2, 3, 10, 50], [5, 20, 6, 90]];

Deno.test("sparse N:M: 2:4, 1:4, 3:8, 2:3 (partial last group), 5:20 (8-bit positions)", async () => {
  for (const dtype of dtypes) {
    for (const [keep, group, N, K] of NM_CASES) {
      const s = packNM(randomNM(N, K, keep, group, keep * 100 + group), N, K, keep, group, dtype);
      for (const override of VERSIONS) {
        for (const texture of [false, true]) {
          for (const M of [1, 6]) await check(s, M, 5 + M, { override, texture });
        }
      }
      for (const { override, texture } of TILES) await check(s, 6, 11, { override, texture });
    }
  }
});

Deno.test("sparse: bias, weights split into row chunks", async () => {
  for (const dtype of dtypes) {
    const s = packUnstructured(randomSparse(47, 40, 3), 47, 40, dtype);
    const nm = packNM(randomNM(47, 40, 2, 4, 4), 47, 40, 2, 4, dtype);
    for (
      const override of [{}, { variant: "wg" as const }, { variant: "lane" as const, x: "storage" as const }]
    ) {
      for (const M of [1, 5]) {
        for (const texture of [false, true]) {
          await check(s, M, 11, { bias: true, chunkRows: 10, override, texture });
          await check(nm, M, 12, { bias: true, chunkRows: 9, override, texture });
        }
      }
    }
    // A chunk of empty rows only, whose weight words would be empty (a binding under 16 bytes).
    const W = randomSparse(6, 40, 5);
    W.fill(0, 2 * 40, 4 * 40);
    const holes = packUnstructured(W, 6, 40, dtype);
    for (const layout of ["groups", "delta"] as const) {
      for (const override of VERSIONS) {
        for (const texture of [false, true]) {
          await check(holes, 2, 13, { chunkRows: 2, override, texture, layout });
        }
      }
    }
  }
});

Deno.test("sparse: X wider than one uniform slot (column segments), density 0 to 1", async () => {
  // tm = 4 slots hold 4096 columns, tm = 1 slots 16384: K = 4100 and 16390 need two segments.
  for (const dtype of dtypes) {
    const s = packUnstructured(randomSparse(11, 4100, 21, 0.9), 11, 4100, dtype);
    await check(s, 5, 1, { override: { x: "ubo", variant: "lane", tm: 4 } });
    await check(s, 5, 9, { override: { x: "ubo", variant: "lane", tm: 4 }, texture: true, layout: "groups" });
    await check(s, 1, 10, {
      override: { x: "ubo", variant: "lane", tm: 1 },
      texture: true,
      layout: "groups",
    });
    await check(s, 5, 7, { override: { x: "ubo", variant: "lane", tm: 4 }, texture: false });
    await check(s, 5, 11, { override: { x: "ubo", variant: "lane", tm: 8 }, bias: true });
    await check(s, 9, 12, {
      override: { x: "ubo", variant: "lane", tm: 16 },
      texture: true,
      layout: "groups",
    });
    await check(s, 1, 2, { override: { x: "ubo", variant: "lane", tm: 1 }, bias: true });
    const wide = packUnstructured(randomSparse(5, 16390, 22, 0.5), 5, 16390, dtype);
    await check(wide, 1, 3, { override: { x: "ubo", variant: "lane", tm: 1 }, bias: true });
    await check(wide, 1, 13, {
      override: { x: "ubo", variant: "lane", tm: 1 },
      texture: true,
      layout: "groups",
    });
    await check(wide, 2, 4, { override: { x: "ubo", variant: "lane", tm: 4 }, chunkRows: 2 });
    // 3-column groups: segments of 4095 columns end on a group boundary.
    const nm = packNM(randomNM(6, 4103, 1, 3, 23), 6, 4103, 1, 3, dtype);
    await check(nm, 4, 5, { override: { x: "ubo", variant: "lane", tm: 4 }, bias: true });
    await check(nm, 4, 8, { override: { x: "ubo", variant: "lane", tm: 4 }, texture: false });
    await check(nm, 7, 14, { override: { x: "ubo", variant: "lane", tm: 8 }, bias: true });
    const nm24 = packNM(randomNM(4, 16392, 2, 4, 24), 4, 16392, 2, 4, dtype);
    await check(nm24, 1, 6, { override: { x: "ubo", variant: "lane", tm: 1 } });
  }
});

Deno.test({
  name:
    "sparse: at M = 1 X is read in place (Gpu.gemvInput) or copied into slots, never packed or read past K",
  // Only where X is gathered from uniform slots (lavapipe); SwiftShader and GPUs read it in storage.
  ignore: !gpu.cpu?.uniformX,
  fn: async () => {
    for (const dtype of dtypes) {
      const cases: [SparseMatrix, number][] = [
        [packUnstructured(randomSparse(37, 300, 31), 37, 300, dtype), 1],
        [packNM(randomNM(9, 256, 2, 4, 32), 9, 256, 2, 4, dtype), 1],
        [packNM(randomNM(9, 258, 2, 4, 35), 9, 258, 2, 4, dtype), 1], // a narrower last group: copied, zeros past K
        [packUnstructured(randomSparse(13, 301, 33), 13, 301, dtype), 3], // M > 1: packed as before
        [packUnstructured(randomSparse(5, 16390, 34, 0.5), 5, 16390, dtype), 1], // two slots: copied
      ];
      for (const [s, M] of cases) {
        for (const [texture, copySrc] of [[true, true], [false, true], [true, false]]) {
          const w = uploadSparse(gpu, s, { texture });
          const X = randomArray(M * s.cols, s.cols + M);
          // Without COPY_SRC (a caller's buffer) X cannot be copied: the packing dispatch runs.
          const x = copySrc ? gpu.gemvInput(M * s.cols * 4, "x") : gpu.device.createBuffer({
            size: M * s.cols * 4,
            usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
          });
          const y = gpu.buffer(M * s.rows * 4, "y");
          if (copySrc) gpu.write(x, new Float32Array(x.size / 4).fill(NaN)); // past K: never read
          gpu.write(x, X);
          const d0 = gpu.dispatchCount;
          sparseLinear(gpu, x, w, y, M);
          const segments = Math.ceil(s.cols / sparseSlotCols(1, s.format === "nm" ? s.group : 1));
          const what =
            `sparse ${s.format} ${M}x${s.rows}x${s.cols} ${dtype} texture ${texture} COPY_SRC ${copySrc}`;
          const dispatches = gpu.dispatchCount - d0;
          if (M === 1 && copySrc) {
            assert.equal(dispatches, w.chunks.length * segments, `${what}: no packing dispatch`);
          } else assert.equal(dispatches, w.chunks.length * segments + 1, `${what}: X packed into slots`);
          const want = refLinear(X, unpackSparse(s), M, s.rows, s.cols);
          assertClose(await gpu.readF32(y), want, 1e-5 * Math.sqrt(s.cols), 1e-4, what);
          releaseSparse(gpu, w);
          gpu.release(y);
          if (copySrc) gpu.release(x);
          else x.destroy();
        }
      }
    }
  },
});

/** Rows that exercise the delta layout: long gaps (escapes), block edges, empty and full blocks. */
function gappy(rows: number, cols: number, seed: number): Float32Array {
  const W = randomArray(rows * cols, seed);
  const r = rng(seed + 5);
  for (let i = 0; i < rows; i++) {
    const kind = i % 5;
    for (let c = 0; c < cols; c++) {
      const edge = c % 4096 === 0 || c % 4096 === 4095 || c === cols - 1;
      const keep = kind === 0
        ? edge || c % 997 === 0 // gaps of 255-997: one to three escapes
        : kind === 1
        ? c >= 4096 && c < 8192 // one full block, the others empty
        : kind === 2
        ? false // empty row
        : kind === 3
        // gaps of exactly 15, 16, 30 (4-bit: none, one, one escape), 195, 255, 511 (8-bit: 0, 0, 1)
        ? c === 15 || c === 31 || c === 61 || c === 256 || c === 511 || c === 767 + 255 || c === cols - 1
        : r() < 0.1;
      if (!keep) W[i * cols + c] = 0;
    }
  }
  return W;
}

Deno.test("sparse delta layout: escapes, several blocks per slot, segments, chunks", async () => {
  for (const dtype of dtypes) {
    for (const [N, K] of [[11, 9000], [7, 4096], [6, 16390], [5, 257]]) {
      const s = packUnstructured(gappy(N, K, N + K), N, K, dtype);
      const overrides: SparseLinearOverride[] = [
        { variant: "lane", x: "ubo", tm: 1 },
        { variant: "lane", x: "ubo", tm: 4 },
        { variant: "lane", x: "ubo", tm: 16 },
        { variant: "lane", x: "storage", tm: 4 },
        { variant: "lane", x: "storage", tm: 8 },
        { variant: "wg" },
      ];
      for (const override of overrides) {
        for (const deltaBits of [4, 8] as const) {
          const texture = override.variant !== "wg"; // the GPU versions read storage by default
          const o = { override, texture, layout: "delta" as const, deltaBits };
          // A partial last quad: tm + 2 activation rows, or tm - 3 for tm = 16.
          const M = override.tm === 16 ? 13 : override.tm ? override.tm + 2 : 1;
          await check(s, M, K, { ...o, bias: true });
          await check(s, 2, K + 1, { ...o, chunkRows: 3 });
        }
      }
    }
  }
  // The wg version needs the groups' start columns, which CPU adapters do not store by default.
  const s = packUnstructured(gappy(3, 40, 1), 3, 40, "f32");
  const w = uploadSparse(gpu, s, { texture: true, layout: "delta", starts: false });
  const b = gpu.buffer(4 * 40 * 3, "b");
  assert.throws(() => sparseLinear(gpu, b, w, b, 1, undefined, { variant: "wg" }), ArgumentError);
  releaseSparse(gpu, w);
  gpu.release(b);
});

Deno.test("sparse: more activation rows than one turn of uniform slots", async () => {
  // 13 rows = 4 m-tiles of 4 (the last partial), packed 3 then 1 (the slots are reused), also
  // with two column segments per tile.
  const s = packUnstructured(randomSparse(19, 33, 30), 19, 33, "f32");
  await check(s, 13, 31, { override: { x: "ubo", variant: "lane", tm: 4, slotTiles: 3 } });
  const wide = packUnstructured(randomSparse(7, 4200, 32, 0.95), 7, 4200, "f32");
  await check(wide, 13, 33, { override: { x: "ubo", variant: "lane", tm: 4, slotTiles: 2 }, bias: true });
  // Tiles of 8 and 16 rows (2 and 4 slots a tile), one tile a turn.
  await check(s, 13, 34, { override: { x: "ubo", variant: "lane", tm: 8, slotTiles: 1 } });
  await check(wide, 21, 35, { override: { x: "ubo", variant: "lane", tm: 16, slotTiles: 1 }, bias: true });
});

Deno.test("sparse: activation rows per invocation follow M (uniform X) and are checked", () => {
  const w = uploadSparse(gpu, packUnstructured(randomSparse(5, 9, 36), 5, 9, "f32"));
  // X in uniform slots decodes a row's weights once per tile of 4, 8 or 16 activation rows.
  const tms = [1, 2, 4, 5, 8, 9, 16, 40].map((M) => chooseSparseLinear(gpu, M, w, false, { x: "ubo" }).tm);
  assert.deepEqual(tms, [1, 4, 4, 8, 8, 16, 16, 16]);
  // X in storage: the CPU profile's tile (SwiftShader 8), else 4; 4 for M <= 4.
  const storage = { variant: "lane", x: "storage" } as const;
  assert.equal(chooseSparseLinear(gpu, 9, w, false, storage).tm, gpu.cpu?.sparseStorageRows ?? 4);
  assert.equal(chooseSparseLinear(gpu, 3, w, false, storage).tm, 4);
  const o = chooseSparseLinear(gpu, 9, w, false, { x: "ubo" });
  assert.throws(() => sparseLinearWgsl({ ...o, tm: 2 as 4 }), /tm must be 1, 4, 8 or 16/);
  assert.throws(() => sparseLinearWgsl({ ...o, variant: "wg", x: "storage", tm: 4 }), /tm must be/);
  releaseSparse(gpu, w);
});

Deno.test({
  name: "sparse: rows past lavapipe's loop limit are refused by the lane version, run by wg",
  ignore: !gpu.isCpu,
  fn: async () => {
    // 256:256 keeps every weight: 8-bit positions, 4 per index word, 75000 words a row.
    const cols = 300_000;
    const s = packNM(randomArray(2 * cols, 40), 2, cols, 256, 256);
    const w = uploadSparse(gpu, s);
    const b = gpu.buffer(2 * cols * 4, "x");
    assert.throws(() => sparseLinear(gpu, b, w, b, 1, undefined, { variant: "lane" }), UnsupportedError);
    releaseSparse(gpu, w);
    gpu.release(b);
    await check(s, 1, 41, { override: { variant: "wg" } });
  },
});

Deno.test("sparse: f16 values need shader-f16 (a device opened with forceF32)", async () => {
  const g = await Gpu.create({ forceF32: true });
  try {
    assert.equal(g.f16, false);
    const s = packUnstructured(new Float32Array([1, 0, 0, 2]), 2, 2, "f16");
    assert.throws(() => uploadSparse(g, s), UnsupportedError);
    const w = uploadSparse(g, s, { dtype: "f32" }); // converted on upload
    assert.equal(w.dtype, "f32");
    releaseSparse(g, w);
  } finally {
    g.destroy();
  }
});

Deno.test("sparseLinear and uploadSparse refuse bad arguments at the call", () => {
  const W = new Float32Array([1, 0, 0, 2, 0, 3, 0, 0, 0, 0, 0, 4]); // [3, 4]
  const s = packUnstructured(W, 3, 4);
  const bad = (f: () => unknown, re: RegExp) =>
    assert.throws(f, (e: Error) => e instanceof ArgumentError && re.test(e.message));
  // Malformed matrices used to upload as NaN (values past the end) or shifted rows.
  bad(() => uploadSparse(gpu, { ...s, values: s.values.subarray(0, 2) }), /2 values but the bitmap keeps 4/);
  bad(
    () => uploadSparse(gpu, s, { layout: "rows" as SparseGpuLayout }),
    /layout must be "delta" or "groups"/,
  );
  bad(() => uploadSparse(gpu, s, { maxRowsPerChunk: 0 }), /maxRowsPerChunk must be an integer >= 1/);
  const w = uploadSparse(gpu, s);
  const x = gpu.upload(new Float32Array([1, 1, 1, 1]), "x"), y = gpu.buffer(3 * 4, "y");
  const small = gpu.buffer(4, "small");
  try {
    bad(
      () => sparseLinear(gpu, small, w, y, 1),
      /sparseLinear: x holds 4 bytes but X \[M 1, K 4\] f32 needs 16/,
    );
    bad(() => sparseLinear(gpu, x, w, y, 2), /sparseLinear: x holds 16 bytes/);
    bad(() => sparseLinear(gpu, x, w, small, 1), /sparseLinear: y holds 4 bytes/);
    bad(() => sparseLinear(gpu, x, w, y, 1, small), /sparseLinear: bias holds 4 bytes/);
    bad(() => sparseLinear(gpu, x, w, y, 1, undefined, { tm: 3 as 4 }), /override\.tm must be 1, 4, 8 or 16/);
    releaseSparse(gpu, w);
    // Released: recording nothing left y stale, silently.
    bad(() => sparseLinear(gpu, x, w, y, 1), /no data on the GPU \(released\)/);
  } finally {
    releaseSparse(gpu, w);
    gpu.release(x, y, small);
  }
});

Deno.test("sparse runtime: no buffer leaks", async () => {
  releaseSparseScratch(gpu);
  await gpu.sync();
  assert.equal(gpu.liveBuffers, 0, `${gpu.liveBuffers} GPU buffers leaked`);
  gpu.destroy(); // last test: no device outlives the file (ARCHITECTURE.md, "Buffer lifetimes")
});
