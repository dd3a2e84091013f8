/**
 * The public surface (mod.ts): every export resolves to a value, the main entry points of each
 * layer are there, and the module doc's kernel example (a GEMV on your own buffers) works.
 */
import assert from "node:assert/strict";
import * as owlgpu from "../mod.ts";

Deno.test("mod.ts: every layer's entry points are exported and defined", () => {
  for (const [name, value] of Object.entries(owlgpu)) {
    assert.notEqual(value, undefined, `${name} is undefined`);
  }
  const expected = [
    // runtime, kernels, launchers
    "Gpu",
    "uploadMatrix",
    "InFlight",
    "linearWgsl",
    "rowMaskWgsl",
    "outlierWgsl",
    "linear",
    "attention",
    "wandaRowMask",
    "outlierCount",
    // models, data, evaluation, pruning
    "openWeights",
    "openLlama2c",
    "SafetensorsFile",
    "GpuModel",
    "ForwardRunner",
    "exportHuggingFace",
    "Llama2cTokenizer",
    "HfTokenizer",
    "tokenizeCorpus",
    "calibrationWindows",
    "evaluatePerplexity",
    "prune",
    "owlAllocation",
    "reportMarkdown",
  ];
  for (const n of expected) assert.ok(n in owlgpu, `mod.ts lacks ${n}`);
  for (const E of [owlgpu.ArgumentError, owlgpu.ModelFormatError, owlgpu.GpuUnavailableError]) {
    const e = new E("x");
    assert.ok(e instanceof owlgpu.OwlError);
    assert.equal(e.name, E.name);
  }
});

Deno.test("mod.ts: the module doc's GEMV example", async () => {
  let gpu: owlgpu.Gpu;
  try {
    gpu = await owlgpu.Gpu.create();
  } catch (e) {
    if (e instanceof owlgpu.GpuUnavailableError) return; // no WebGPU adapter on this machine
    throw e;
  }
  try {
    const w = owlgpu.uploadMatrix(gpu, new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1]), 3, 4, "w");
    const x = gpu.upload(new Float32Array([1, 2, 3, 4]), "x");
    const y = gpu.buffer(3 * 4, "y");
    owlgpu.linear(gpu, x, w, y, 1);
    assert.deepEqual(Array.from(await gpu.readF32(y)), [1, 2, 10]);
    owlgpu.releaseMatrix(gpu, w);
    gpu.release(x, y);
    assert.equal(gpu.liveBuffers, 0);
  } finally {
    gpu.destroy();
  }
});

Deno.test("Gpu: a Gpu its owner forgot is destroyed when the runtime unloads; destroy() twice is harmless", async () => {
  const forgotten = await owlgpu.Gpu.create();
  const destroyed = await owlgpu.Gpu.create();
  destroyed.destroy(); // removes its listener: the event below must not reach it again
  let timer: ReturnType<typeof setTimeout> | undefined;
  const alive = new Promise<string>((resolve) => timer = setTimeout(() => resolve("still alive"), 5000));
  globalThis.dispatchEvent(new Event("unload"));
  const outcome = await Promise.race([forgotten.device.lost.then((info) => info.reason as string), alive]);
  clearTimeout(timer);
  assert.equal(outcome, "destroyed");
  forgotten.destroy();
  destroyed.destroy();
});

Deno.test("Gpu: after the device reports an error, readbacks and syncs throw instead of returning wrong numbers", async () => {
  const gpu = await owlgpu.Gpu.create();
  try {
    const x = gpu.upload(new Float32Array([1, 2, 3, 4]), "x");
    assert.deepEqual(Array.from(await gpu.readF32(x)), [1, 2, 3, 4]);
    // A kernel whose binding is missing: WebGPU rejects the dispatch and only reports it as an event.
    const pipeline = gpu.device.createComputePipeline({
      layout: "auto",
      compute: {
        module: gpu.device.createShaderModule({
          code: "@group(0) @binding(0) var<storage, read_write> y: array<f32>;\n" +
            "@compute @workgroup_size(1) fn main() { y[0] = 7.0; }",
        }),
        entryPoint: "main",
      },
    });
    const encoder = gpu.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.dispatchWorkgroups(1);
    pass.end();
    gpu.device.queue.submit([encoder.finish()]);
    const isDeviceError = (e: unknown) =>
      e instanceof owlgpu.GpuDeviceError && /the GPU reported an error/.test(e.message);
    await assert.rejects(gpu.readF32(x), isDeviceError);
    await assert.rejects(gpu.sync(), isDeviceError); // and every later one
    gpu.release(x);
  } finally {
    gpu.destroy();
  }
  // Out of memory is the user's to act on (an OwlError with advice), not a bug.
  const oom = await owlgpu.Gpu.create();
  try {
    oom.device.dispatchEvent(
      new GPUUncapturedErrorEvent("uncapturederror", { error: new GPUOutOfMemoryError("no memory left") }),
    );
    await assert.rejects(
      oom.sync(),
      (e) =>
        e instanceof owlgpu.GpuOutOfMemoryError && e instanceof owlgpu.OwlError &&
        /--nsamples/.test(e.message),
    );
  } finally {
    oom.destroy();
  }
});

Deno.test("uploadMatrix: f16 refuses weights beyond f16's range instead of uploading infinities", async () => {
  const gpu = await owlgpu.Gpu.create();
  try {
    if (!gpu.f16) { // SwiftShader, say: f16 weights are refused as such
      assert.throws(
        () => owlgpu.uploadMatrix(gpu, new Float32Array([1, 2]), 1, 2, "w", "f16"),
        (e) => e instanceof owlgpu.UnsupportedError && /needs shader-f16/.test(e.message),
      );
      return;
    }
    assert.throws(
      () => owlgpu.uploadMatrix(gpu, new Float32Array([1, 2, 3, 4, -70000, 6]), 2, 3, "w", "f16"),
      (e) =>
        e instanceof owlgpu.UnsupportedError &&
        /^w: weight \[1, 1\] = -70000 is beyond f16's range/.test(e.message),
    );
    assert.equal(gpu.liveBuffers, 0);
    // 65519 still rounds to 65504, the largest f16; f32 takes anything.
    const ok = owlgpu.uploadMatrix(gpu, new Float32Array([65519, -65504]), 1, 2, "ok", "f16");
    const wide = owlgpu.uploadMatrix(gpu, new Float32Array([1e30, 2]), 1, 2, "wide", "f32");
    owlgpu.releaseMatrix(gpu, ok);
    owlgpu.releaseMatrix(gpu, wide);
  } finally {
    gpu.destroy();
  }
});

Deno.test("uploadMatrix refuses a wrong data length and non-finite weights; launchers refuse released buffers", async () => {
  const gpu = await owlgpu.Gpu.create();
  try {
    const refused = (re: RegExp) => (e: unknown) => e instanceof owlgpu.ArgumentError && re.test(e.message);
    assert.throws(
      () => owlgpu.uploadMatrix(gpu, new Float32Array(5), 2, 3, "w"),
      refused(/w is 2x3 = 6 values but the data holds 5/),
    );
    assert.throws(
      () => owlgpu.uploadMatrix(gpu, new Float32Array([1, 2, 3, 4, NaN, 6]), 2, 3, "w"),
      refused(/^w: weight \[1, 1\] is NaN; the weights must be finite/),
    );
    assert.throws(
      () => owlgpu.uploadMatrix(gpu, new Float32Array([1, -Infinity]), 1, 2, "w", gpu.f16 ? "f16" : "f32"),
      refused(/^w: weight \[0, 1\] is -Infinity/),
    );
    assert.equal(gpu.liveBuffers, 0);

    const w = owlgpu.uploadMatrix(gpu, new Float32Array([1, 2, 3, 4]), 2, 2, "w");
    const x = gpu.upload(new Float32Array([1, 1]), "x"), y = gpu.buffer(8, "y");
    owlgpu.linear(gpu, x, w, y, 1);
    assert.deepEqual(Array.from(await gpu.readF32(y)), [3, 7]);
    gpu.release(x);
    gpu.release(x); // twice: harmless, and counted once
    assert.equal(gpu.liveBuffers, 2);
    assert.throws(() => owlgpu.linear(gpu, x, w, y, 1), refused(/^linear: x was released \(Gpu\.release\)/));
    owlgpu.releaseMatrix(gpu, w);
    gpu.release(y);
    assert.equal(gpu.liveBuffers, 0);
  } finally {
    gpu.destroy();
  }
});
