/**
 * Sparse suite: sparse GEMV (batch 1) and GEMM against our dense linear with the same value dtype,
 * on LLaMA-7B shapes, at 50-90% unstructured sparsity and 2:4. Weights are seeded random values
 * with a random mask, written to the GPU in full (buffers never written read as shared zero pages
 * on lavapipe and give fake fast numbers). Dense and sparse runs alternate (after a warm-up) and
 * each side reports its median, so load from other processes hits both alike.
 *
 * Before timing, 8 sampled outputs of each kernel are checked against float64 on the host. Times
 * are GPU times from timestamps around all the recorded work (see GpuClock), with the CPU caches
 * evicted before every run (a 90%-sparse 11008x4096 f32 matrix, 27 MB, would otherwise stay in
 * this machine's 32 MiB L3 between runs, which no forward pass does).
 *
 * Columns: `ms_dense`, `ms_sparse` (medians), `speedup` = median of the per-pair ratios (see
 * timePair); `ideal_speedup` = bytes the dense kernel moves / bytes the sparse one moves
 * (weights + X + Y; the sparse side counts every GPU buffer or texture of the matrix, padding
 * and row offsets included); `gbps` = sparse bytes / ms_sparse.
 *
 * Dense baseline on CPU adapters: the faster of our two dense ways (picked per shape, dtype and M
 * from 3 interleaved runs each, named in `dense_kernel` and the row's last column), the storage
 * kernels (src/ops/linear.ts: the 1x8 GEMV tile, the GEMM tiles) or `gemv-tex` (src/ops/gemv_tex.ts:
 * W in textures, X in a uniform slot, the sparse kernels' techniques; for a GEMM row once per
 * activation row), so the speed-ups are not a technique difference.
 * @module
 */
import type { GpuDType } from "../kernels/common.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { releaseMatrix, uploadMatrix } from "../src/gpu/matrix.ts";
import { linear } from "../src/ops/linear.ts";
import { sparseLinear } from "../src/ops/sparse.ts";
import {
  gemvTex,
  gemvTexSupported,
  type GpuTexMatrix,
  releaseGemvTex,
  uploadGemvTex,
} from "../src/ops/gemv_tex.ts";
import { packNM, packUnstructured, type SparseMatrix } from "../src/sparse/format.ts";
import { releaseSparse, uploadSparse } from "../src/sparse/upload.ts";

export interface SparseBenchRow {
  kind: "gemv" | "gemm";
  /** Weight shape C_out x C_in. */
  shape: string;
  /** Activation rows. */
  M: number;
  format: "unstructured" | "2:4";
  dtype: GpuDType;
  sparsity: number;
  ms_dense: number;
  ms_sparse: number;
  speedup: number;
  ideal_speedup: number;
  gbps: number;
  bytes_dense: number;
  bytes_sparse: number;
  /** Timed runs per side (median taken). */
  reps: number;
  /** GPU time from timestamps around the recorded work, or wall time less an empty submit's. */
  timing: "timestamp" | "wall";
  /** Why this row was shrunk (CPU adapters), if it was. */
  note?: string;
  /** Dense kernel timed: the storage linear, or the texture GEMV (CPU adapters, the faster one; M rows: M GEMVs). */
  dense_kernel?: "storage" | "gemv-tex";
}

export interface SparseBenchOptions {
  /** Default run: one shape, 50/70/90% and 2:4, fewer repetitions. */
  quick?: boolean;
  shapes?: [number, number][];
  sparsities?: number[];
  dtypes?: GpuDType[];
  /** Activation rows of the GEMM rows (default 8 on CPU adapters, 64 on GPUs). */
  gemmM?: number;
  /** Timed GEMV runs per side (default 9; 5 when quick on a CPU adapter); GEMM rows get half. */
  reps?: number;
  /** Skip the GEMM rows. */
  noGemm?: boolean;
  log?: (line: string) => void;
}

export const SPARSE_FULL_SHAPES: [number, number][] = [[11008, 4096], [4096, 11008], [4096, 4096]];
export const SPARSE_LEVELS = [0.5, 0.6, 0.7, 0.8, 0.9];

/** Seeded LCG values in [-1, 1). */
export function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 31 - 1;
  };
}

/** Random [N, K]: dense values, then `sparsity` of each row zeroed at random (per-row exact count). */
export function randomWeights(N: number, K: number, sparsity: number, seed: number): Float32Array {
  const r = lcg(seed);
  const W = new Float32Array(N * K);
  for (let i = 0; i < W.length; i++) W[i] = r() * 0.05;
  if (sparsity <= 0) return W;
  const perm = new Uint32Array(K);
  const zero = Math.round(sparsity * K);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) perm[k] = k;
    for (let q = 0; q < zero; q++) { // partial Fisher-Yates: the first `zero` of a random permutation
      const j = q + Math.floor((r() + 1) / 2 * (K - q));
      const t = perm[q];
      perm[q] = perm[j];
      perm[j] = t;
      W[n * K + perm[q]] = 0;
    }
  }
  return W;
}

/** Zero 2 of every 4 (random positions). */
function random24(N: number, K: number, seed: number): Float32Array {
  const W = randomWeights(N, K, 0, seed);
  const r = lcg(seed + 1);
  const pairs = [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]];
  for (let g = 0; g < W.length; g += 4) {
    const p = pairs[Math.floor((r() + 1) / 2 * 6) % 6];
    W[g + p[0]] = 0;
    W[g + p[1]] = 0;
  }
  return W;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Milliseconds of `record`'s GPU work: timestamps of two empty marker passes recorded before and
 * after it (end of the first to start of the second), so work outside compute passes (the copies
 * the dense texture GEMM records) is covered, and lavapipe's ~12 ms submit-and-wait latency is
 * not. Without timestamp queries: wall time minus the wall time of an empty submit.
 */
class GpuClock {
  private readonly qs: GPUQuerySet | null;
  private readonly resolve: GPUBuffer | null;
  /** Buffers copied into each other before each sample to evict the CPU caches (lavapipe). */
  private readonly evictA: GPUBuffer;
  private readonly evictB: GPUBuffer;

  constructor(private readonly gpu: Gpu, private readonly evictBytes = 48 * 2 ** 20) {
    this.qs = gpu.timestamps ? gpu.device.createQuerySet({ type: "timestamp", count: 4 }) : null;
    this.resolve = gpu.timestamps ? gpu.buffer(32, "clock-resolve", GPUBufferUsage.QUERY_RESOLVE) : null;
    this.evictA = gpu.buffer(evictBytes, "evict-a");
    this.evictB = gpu.buffer(evictBytes, "evict-b");
    gpu.write(this.evictA, new Float32Array(evictBytes / 4).fill(1)); // real pages, not the zero page
  }

  /** GPU ms of one call of `record`, after evicting the caches. */
  async time(record: () => void): Promise<number> {
    const gpu = this.gpu;
    gpu.copy(this.evictA, 0, this.evictB, 0, this.evictBytes);
    await gpu.sync();
    if (this.qs && this.resolve) {
      gpu.timedPass(this.qs, 0, () => {});
      record();
      gpu.timedPass(this.qs, 2, () => {});
      gpu.commandEncoder().resolveQuerySet(this.qs, 0, 4, this.resolve, 0);
      const ts = new BigUint64Array(await gpu.read(this.resolve, 0, 32));
      return Number(ts[2] - ts[1]) / 1e6;
    }
    let t0 = performance.now();
    await gpu.sync();
    const idle = performance.now() - t0;
    t0 = performance.now();
    record();
    await gpu.sync();
    return Math.max(0, performance.now() - t0 - idle);
  }

  release(): void {
    this.qs?.destroy();
    this.gpu.release(this.resolve, this.evictA, this.evictB);
  }
}

/**
 * Alternate A and B `reps` times after a warm-up of each: the median time of each side, and the
 * median of the per-pair ratios A_i / B_i (each A run next to its B run, so the load from other
 * processes on a shared machine, which drifts over seconds, weighs on both alike).
 */
async function timePair(
  clock: GpuClock,
  a: () => void,
  b: () => void,
  reps: number,
): Promise<{ a: number; b: number; ratio: number }> {
  await clock.time(a);
  await clock.time(b);
  const ta: number[] = [], tb: number[] = [];
  for (let i = 0; i < reps; i++) {
    ta.push(await clock.time(a));
    tb.push(await clock.time(b));
  }
  return { a: median(ta), b: median(tb), ratio: median(ta.map((x, i) => x / tb[i])) };
}

/**
 * Run `record` once and compare 8 sampled outputs with a float64 host dot product (W as given,
 * rounded to f16 when the kernel reads f16): a kernel that reads unwritten or wrong data fails
 * the benchmark instead of reporting a fake time.
 */
async function checkSamples(
  gpu: Gpu,
  record: () => void,
  y: GPUBuffer,
  X: Float32Array,
  W: Float32Array,
  M: number,
  N: number,
  K: number,
  dtype: GpuDType,
  what: string,
): Promise<void> {
  record();
  const got = await gpu.readF32(y, 0, M * N);
  const r = lcg(99);
  for (let i = 0; i < 8; i++) {
    const m = Math.floor((r() + 1) / 2 * M) % M, n = Math.floor((r() + 1) / 2 * N) % N;
    let want = 0, scale = 0;
    for (let k = 0; k < K; k++) {
      const w = dtype === "f16" ? Math.fround(new Float16Array([W[n * K + k]])[0]) : W[n * K + k];
      want += X[m * K + k] * w;
      scale += Math.abs(X[m * K + k] * w);
    }
    const g = got[m * N + n];
    if (!(Math.abs(g - want) <= 1e-4 * scale + 1e-6)) {
      throw new Error(`${what}: Y[${m}, ${n}] = ${g}, want ${want}; the kernel is broken, not timed`);
    }
  }
}

/** One shape: dense once per dtype, then each level's random weights packed for each dtype. */
async function benchShape(
  gpu: Gpu,
  N: number,
  K: number,
  dtypes: GpuDType[],
  levels: (number | "2:4")[],
  gemm: { M: number; levels: (number | "2:4")[] } | undefined,
  reps: number,
  clock: GpuClock,
  note: string | undefined,
  log: (line: string) => void,
): Promise<SparseBenchRow[]> {
  const rows: SparseBenchRow[] = [];
  const maxM = gemm ? Math.max(1, gemm.M) : 1;
  const X = new Float32Array(maxM * K);
  const rx = lcg(7);
  for (let i = 0; i < X.length; i++) X[i] = rx();
  const x = gpu.upload(X, "x"), y = gpu.buffer(maxM * N * 4, "y");
  const denseW = randomWeights(N, K, 0, 1);
  const dense = dtypes.map((dt) => uploadMatrix(gpu, denseW, N, K, `dense-${dt}`, dt));
  // CPU adapters: the texture GEMV too (for M > 1 run once per activation row); each row times
  // the faster dense kernel, picked once per dtype and M.
  const tex: (GpuTexMatrix | undefined)[] = gpu.isCpu && gemvTexSupported(K)
    ? dtypes.map((dt) => uploadGemvTex(gpu, denseW, N, K, { dtype: dt, label: `dense-tex-${dt}` }))
    : [];
  const pick = new Map<string, "storage" | "gemv-tex">();
  try {
    for (const level of levels) {
      const W = level === "2:4" ? random24(N, K, 11) : randomWeights(N, K, level, Math.round(level * 1000));
      for (const [di, dtype] of dtypes.entries()) {
        const s: SparseMatrix = level === "2:4"
          ? packNM(W, N, K, 2, 4, dtype)
          : packUnstructured(W, N, K, dtype);
        const w = uploadSparse(gpu, s, { label: "sparse" });
        const vb = dtype === "f16" ? 2 : 4;
        try {
          const Ms = gemm && gemm.levels.includes(level) ? [1, gemm.M] : [1];
          for (const M of Ms) {
            const io = (M * K + M * N) * 4;
            const bytesDense = N * K * vb + io, bytesSparse = w.bytes + io;
            const runStorage = () => linear(gpu, x, dense[di], y, M);
            const t = tex[di];
            const runTex = t ? () => gemvTex(gpu, x, t, y, M) : undefined;
            const runSparse = () => sparseLinear(gpu, x, w, y, M);
            const what = `${M}x${N}x${K} ${dtype} ${level}`;
            const key = `${dtype} ${M}`;
            if (runTex && !pick.has(key)) {
              await checkSamples(gpu, runTex, y, X, denseW, M, N, K, dtype, `dense gemv-tex ${what}`);
              const p = await timePair(clock, runStorage, runTex, 3);
              pick.set(key, p.ratio > 1 ? "gemv-tex" : "storage");
              const kind = M === 1 ? "GEMV" : `GEMM M = ${M}`, texRuns = M === 1 ? "" : ` x ${M} rows`;
              const ms = (v: number) => `${v.toFixed(1)} ms`;
              log(`dense ${kind} ${N}x${K} ${dtype}: storage ${ms(p.a)}, gemv-tex${texRuns} ${ms(p.b)}`);
            }
            const denseKernel = runTex && pick.get(key) === "gemv-tex" ? "gemv-tex" : "storage";
            const runDense = denseKernel === "gemv-tex" ? runTex! : runStorage;
            await checkSamples(gpu, runDense, y, X, denseW, M, N, K, dtype, `dense ${what}`);
            await checkSamples(gpu, runSparse, y, X, W, M, N, K, dtype, `sparse ${what}`);
            const r = M === 1 ? reps : Math.max(3, Math.ceil(reps / 2));
            const tp = await timePair(clock, runDense, runSparse, r);
            const row: SparseBenchRow = {
              kind: M === 1 ? "gemv" : "gemm",
              shape: `${N}x${K}`,
              M,
              format: level === "2:4" ? "2:4" : "unstructured",
              dtype,
              sparsity: level === "2:4" ? 0.5 : level,
              ms_dense: tp.a,
              ms_sparse: tp.b,
              speedup: tp.ratio,
              ideal_speedup: bytesDense / bytesSparse,
              gbps: bytesSparse / (tp.b * 1e6),
              bytes_dense: bytesDense,
              bytes_sparse: bytesSparse,
              reps: r,
              timing: gpu.timestamps ? "timestamp" : "wall",
            };
            if (note) row.note = note;
            if (gpu.isCpu) row.dense_kernel = denseKernel;
            rows.push(row);
            log(sparseRowLine(row));
          }
        } finally {
          releaseSparse(gpu, w);
        }
      }
    }
  } finally {
    for (const d of dense) releaseMatrix(gpu, d);
    for (const d of tex) releaseGemvTex(gpu, d);
    gpu.release(x, y);
  }
  return rows;
}

export function sparseTableHead(): string {
  return "kind  shape        M   format        dtype  sparsity  ms_dense  ms_sparse  speedup  ideal   GB/s  dense";
}

export function sparseRowLine(r: SparseBenchRow): string {
  return [
    r.kind.padEnd(5),
    r.shape.padEnd(12),
    String(r.M).padStart(3),
    r.format.padEnd(13),
    r.dtype.padEnd(6),
    r.sparsity.toFixed(2).padStart(8),
    r.ms_dense.toFixed(2).padStart(9),
    r.ms_sparse.toFixed(2).padStart(10),
    (r.speedup.toFixed(2) + "x").padStart(8),
    (r.ideal_speedup.toFixed(2) + "x").padStart(6),
    r.gbps.toFixed(2).padStart(6),
    r.dense_kernel ? ` ${r.dense_kernel}` : "",
  ].join(" ").trimEnd();
}

/** Run the suite (see the module doc); `log` gets each row as it is measured. */
export async function benchSparse(gpu: Gpu, opts: SparseBenchOptions = {}): Promise<SparseBenchRow[]> {
  const log = opts.log ?? (() => {});
  const quick = !!opts.quick;
  const shapes = opts.shapes ?? (quick ? [[11008, 4096]] as [number, number][] : SPARSE_FULL_SHAPES);
  const levels: (number | "2:4")[] = [
    ...(opts.sparsities ?? (quick ? [0.5, 0.7, 0.9] : SPARSE_LEVELS)),
    "2:4",
  ];
  const dtypes = opts.dtypes ?? (gpu.f16 ? ["f32", "f16"] as GpuDType[] : ["f32"] as GpuDType[]);
  const gemmM = opts.gemmM ?? (gpu.isCpu ? 8 : 64);
  // A CPU adapter's GEMMs take ~0.3 s a run: in the quick run only at 70%.
  const gemmLevels = quick && gpu.isCpu ? levels.filter((l) => l === 0.7) : levels;
  const reps = opts.reps ?? (quick && gpu.isCpu ? 5 : 9);
  const notes: string[] = [];
  if (gpu.isCpu && quick) {
    notes.push(
      `CPU adapter, quick run: ${reps} runs, 50/70/90% and 2:4, GEMM at 70% only`,
    );
  }
  if (gpu.isCpu && opts.gemmM === undefined && !opts.noGemm) {
    notes.push(`CPU adapter: GEMM with M = ${gemmM}`);
  }
  const note = notes.length ? notes.join("; ") : undefined;
  const gemm = opts.noGemm ? undefined : { M: gemmM, levels: gemmLevels };
  const rows: SparseBenchRow[] = [];
  const clock = new GpuClock(gpu);
  try {
    for (const [N, K] of shapes) {
      rows.push(...await benchShape(gpu, N, K, dtypes, levels, gemm, reps, clock, note, log));
    }
  } finally {
    clock.release();
  }
  return rows;
}

/** SVG line chart: measured speed-up against sparsity, one line per (kind, shape, dtype); 2:4 as a diamond. */
export function sparseChartSvg(rows: SparseBenchRow[], title: string): string {
  const W = 720, H = 420, L = 60, R = 230, T = 40, B = 50;
  const maxY = Math.max(2, ...rows.map((r) => Math.max(r.speedup, r.ideal_speedup))) * 1.05;
  const px = (s: number) => L + (s - 0.45) / 0.5 * (W - L - R);
  const py = (v: number) => H - B - v / maxY * (H - T - B);
  const colors = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#393b79",
    "#ad494a",
  ];
  const series = new Map<string, SparseBenchRow[]>();
  for (const r of rows) {
    const k = `${r.kind} ${r.shape}${r.kind === "gemm" ? ` M=${r.M}` : ""} ${r.dtype}`;
    series.set(k, [...(series.get(k) ?? []), r]);
  }
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="22" font-size="14">${escapeXml(title)}</text>`,
  ];
  for (let v = 0; v <= maxY; v += maxY > 8 ? 2 : 1) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${py(v)}" y2="${py(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${L - 8}" y="${py(v) + 4}" text-anchor="end">${v}x</text>`);
  }
  out.push(
    `<line x1="${L}" x2="${W - R}" y1="${py(1)}" y2="${py(1)}" stroke="#888" stroke-dasharray="4 3"/>`,
  );
  for (let s = 0.5; s <= 0.901; s += 0.1) {
    out.push(`<text x="${px(s)}" y="${H - B + 18}" text-anchor="middle">${Math.round(s * 100)}%</text>`);
  }
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">sparsity</text>`);
  out.push(
    `<text x="16" y="${(T + H - B) / 2}" transform="rotate(-90 16 ${
      (T + H - B) / 2
    })" text-anchor="middle">speed-up over dense</text>`,
  );
  let i = 0;
  for (const [name, rs] of series) {
    const c = colors[i % colors.length];
    const un = rs.filter((r) => r.format === "unstructured").sort((a, b) => a.sparsity - b.sparsity);
    if (un.length) {
      out.push(
        `<polyline fill="none" stroke="${c}" stroke-width="2" points="${
          un.map((r) => `${px(r.sparsity).toFixed(1)},${py(r.speedup).toFixed(1)}`).join(" ")
        }"/>`,
      );
      out.push(
        `<polyline fill="none" stroke="${c}" stroke-width="1" stroke-dasharray="2 3" points="${
          un.map((r) => `${px(r.sparsity).toFixed(1)},${py(r.ideal_speedup).toFixed(1)}`).join(" ")
        }"/>`,
      );
      for (const r of un) {
        out.push(`<circle cx="${px(r.sparsity)}" cy="${py(r.speedup)}" r="3" fill="${c}"/>`);
      }
    }
    for (const r of rs.filter((r) => r.format === "2:4")) {
      const x = px(r.sparsity), y = py(r.speedup);
      out.push(
        `<path d="M${x} ${y - 6}L${x + 6} ${y}L${x} ${y + 6}L${
          x - 6
        } ${y}Z" fill="none" stroke="${c}" stroke-width="2"/>`,
      );
    }
    const ly = T + 10 + i * 18;
    out.push(
      `<line x1="${W - R + 15}" x2="${W - R + 40}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"/>`,
    );
    out.push(`<text x="${W - R + 46}" y="${ly + 4}">${escapeXml(name)}</text>`);
    i++;
  }
  const ly = T + 14 + i * 18;
  out.push(`<text x="${W - R + 15}" y="${ly}" fill="#555">solid: measured; dotted: ideal</text>`);
  out.push(`<text x="${W - R + 15}" y="${ly + 16}" fill="#555">(bytes moved); diamond: 2:4</text>`);
  out.push("</svg>");
  return out.join("\n") + "\n";
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
