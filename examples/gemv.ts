/**
 * owlgpu's linear kernel on your own data: y = W x (a GEMV, batch 1) and Y = X W^T (a GEMM,
 * batch 4) for a random 1000 x 768 weight, checked against a float64 product on the CPU.
 *
 *   deno run -A examples/gemv.ts
 *
 * Nothing here knows about models: `Gpu` is the WebGPU runtime, `uploadMatrix` puts a row-major
 * [N, K] weight on the GPU (in row chunks when it exceeds the adapter's binding limit), and
 * `linear` picks the kernel version for this adapter and shape and records the dispatches.
 * @module
 */
import { Gpu, linear, releaseMatrix, uploadMatrix } from "../mod.ts";

const N = 1000, K = 768; // output rows (C_out), input columns (C_in)

/** Deterministic pseudo-random values in [-1, 1) (a small LCG, so every run is the same). */
function random(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

/** Y[m, n] = sum_k X[m, k] W[n, k], in float64. */
function cpuLinear(x: Float32Array, w: Float32Array, M: number): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      y[m * N + n] = s;
    }
  }
  return y;
}

/** Largest |a - b| relative to the largest |b|. */
function relError(a: Float32Array, b: Float64Array): number {
  let err = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}

const gpu = await Gpu.create();
console.log(`adapter: ${gpu.adapterName} (cpu adapter: ${gpu.isCpu}, shader-f16: ${gpu.f16})`);
const wHost = random(N * K, 1);
// f32 weights always; f16 weights too when the device has shader-f16 (accumulation stays f32).
for (const dtype of gpu.f16 ? ["f32", "f16"] as const : ["f32"] as const) {
  const w = uploadMatrix(gpu, wHost, N, K, "w", dtype);
  for (const M of [1, 4]) {
    const xHost = random(M * K, 2 + M);
    const x = gpu.upload(xHost, "x");
    const y = gpu.buffer(M * N * 4, "y");
    linear(gpu, x, w, y, M); // warm-up: compiles the pipeline
    await gpu.sync();
    const t0 = performance.now();
    linear(gpu, x, w, y, M); // records the dispatch(es) into the current batch
    const yGpu = await gpu.readF32(y); // submits the batch and reads the result back
    const ms = performance.now() - t0;
    const err = relError(yGpu, cpuLinear(xHost, wHost, M));
    const kind = M === 1 ? "GEMV" : "GEMM";
    console.log(
      `${kind} ${M}x${N}x${K} ${dtype}: ${ms.toFixed(2)} ms (incl. read-back), ` +
        `max error ${err.toExponential(2)} of max |y|, y[0..3] = ${
          Array.from(yGpu.slice(0, 3), (v) => v.toFixed(4))
        }`,
    );
    // f32: only rounding order differs; f16: the weights themselves are rounded to 11 bits.
    if (err > (dtype === "f32" ? 1e-5 : 2e-3)) {
      throw new Error(`${kind} ${dtype} disagrees with the CPU result`);
    }
    gpu.release(x, y);
  }
  releaseMatrix(gpu, w);
}
console.log(`live buffers after release: ${gpu.liveBuffers}`);
gpu.destroy();
