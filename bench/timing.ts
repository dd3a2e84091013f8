/**
 * Kernel timing for benchmarks: warm-up, then the median of several runs. GPU time comes from
 * timestamp queries when the adapter has them (negative or zero deltas, which some drivers
 * report, fall back to wall time); otherwise wall time around submit + completion.
 * @module
 */
import type { Gpu } from "../src/gpu/device.ts";

export interface Timing {
  /** Median milliseconds per run. */
  ms: number;
  source: "timestamp" | "wall";
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Time `record` (which records dispatches into the current batch). */
export async function timeKernel(
  gpu: Gpu,
  record: () => void,
  opts: { warmup?: number; reps?: number } = {},
): Promise<Timing> {
  const warmup = opts.warmup ?? 1, reps = opts.reps ?? 5;
  for (let i = 0; i < warmup; i++) record();
  await gpu.sync();
  const wall: number[] = [];
  const gpuMs: number[] = [];
  const qs = gpu.timestamps ? gpu.device.createQuerySet({ type: "timestamp", count: 2 }) : null;
  const resolve = qs ? gpu.buffer(16, "ts-resolve", GPUBufferUsage.QUERY_RESOLVE) : null;
  try {
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      if (qs && resolve) {
        gpu.timedPass(qs, 0, record);
        gpu.commandEncoder().resolveQuerySet(qs, 0, 2, resolve, 0);
        const ts = new BigUint64Array(await gpu.read(resolve, 0, 16));
        wall.push(performance.now() - t0);
        const d = Number(ts[1] - ts[0]) / 1e6;
        if (d > 0) gpuMs.push(d);
      } else {
        record();
        await gpu.sync();
        wall.push(performance.now() - t0);
      }
    }
  } finally {
    qs?.destroy();
    gpu.release(resolve);
  }
  // Trust timestamps only when every run produced a positive delta.
  if (gpuMs.length === reps) return { ms: median(gpuMs), source: "timestamp" };
  return { ms: median(wall), source: "wall" };
}
