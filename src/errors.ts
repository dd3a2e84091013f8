/**
 * One error class per kind of failure a user can act on. The CLI prints `message` (which says what,
 * where and what to do) and exits with a non-zero status; it never prints a stack for these.
 * @module
 */

/**
 * Base class: every error owlgpu raises on purpose derives from it.
 *
 * @example Tell owlgpu's own errors (a message for the user) from bugs (a stack trace)
 * ```ts
 * import { ArgumentError, OwlError, Sampler } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * let caught: unknown;
 * try {
 *   new Sampler({ topP: 2 });
 * } catch (e) {
 *   caught = e;
 * }
 * assert.ok(caught instanceof OwlError && caught instanceof ArgumentError);
 * assert.equal(caught.name, "ArgumentError"); // the concrete class's name, set by OwlError
 * assert.match(caught.message, /top-p must be in \(0, 1\]/);
 * ```
 */
export class OwlError extends Error {
  /**
   * Create the error; `name` becomes the concrete class's name, and `options.cause` keeps the underlying
   * error.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * No WebGPU adapter, or the adapter lacks something we need.
 *
 * @example What `Gpu.create` does in a runtime without WebGPU (simulated by hiding `navigator.gpu`)
 * ```ts
 * import { Gpu, GpuUnavailableError } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * Object.defineProperty(navigator, "gpu", { value: undefined, configurable: true });
 * try {
 *   await assert.rejects(Gpu.create(), (e) => e instanceof GpuUnavailableError && /WebGPU/.test(e.message));
 * } finally {
 *   delete (navigator as { gpu?: unknown }).gpu; // the runtime's own navigator.gpu is back
 * }
 * ```
 */
export class GpuUnavailableError extends OwlError {}

/**
 * A checkpoint, safetensors file, tokenizer or sparse file is corrupt, truncated or inconsistent.
 *
 * @example A 10-byte file is not a llama2.c checkpoint (its header alone is 28 bytes)
 * ```ts
 * import { MemoryByteSource, ModelFormatError, openLlama2c } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(
 *   openLlama2c(new MemoryByteSource(new Uint8Array(10), "tiny.bin")),
 *   (e) => e instanceof ModelFormatError && e.message.startsWith("tiny.bin: 10 bytes is too short"),
 * );
 * ```
 */
export class ModelFormatError extends OwlError {}

/**
 * Well-formed input that owlgpu does not support (an architecture, a dtype, a shape).
 *
 * @example A GPT-2 config.json is valid, but not an architecture owlgpu runs
 * ```ts
 * import { hfModelConfig, UnsupportedError } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.throws(
 *   () => hfModelConfig({ architectures: ["GPT2LMHeadModel"], hidden_size: 768 }, "gpt2/config.json"),
 *   (e) => e instanceof UnsupportedError && /"GPT2LMHeadModel" is not supported/.test(e.message),
 * );
 * ```
 */
export class UnsupportedError extends OwlError {}

/**
 * A flag or option value out of range, or options that contradict each other.
 *
 * @example A negative sampling temperature
 * ```ts
 * import { ArgumentError, Sampler } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.throws(
 *   () => new Sampler({ temperature: -1 }),
 *   (e) => e instanceof ArgumentError && e.message === "temperature must be a finite number >= 0, got -1",
 * );
 * ```
 */
export class ArgumentError extends OwlError {}

/**
 * A corpus that is missing or too short for the requested windows.
 *
 * @example Five tokens cannot fill one evaluation window of 8
 * ```ts
 * import { CorpusError, evalWindows } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.throws(
 *   () => evalWindows([1, 2, 3, 4, 5], 8),
 *   (e) => e instanceof CorpusError && /has 5 tokens, but one window needs 8/.test(e.message),
 * );
 * ```
 */
export class CorpusError extends OwlError {}

/**
 * An output that cannot be written.
 *
 * @example Writing a safetensors file into a directory that does not exist
 * ```ts
 * import { OutputError, writeSafetensors } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const tensor = { name: "x", dtype: "f32" as const, shape: [1], data: new Uint8Array(4) };
 * await assert.rejects(
 *   writeSafetensors(`${dir}/no/such/dir/x.safetensors`, [tensor]),
 *   (e) => e instanceof OutputError && e.message.includes("check that its directory exists"),
 * );
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class OutputError extends OwlError {}

/**
 * The GPU ran out of memory (WebGPU's GPUOutOfMemoryError): a buffer did not fit. Every result read
 * after it is refused, since a failed allocation leaves the kernels that use it without effect.
 *
 * @example How a Gpu reports an allocation the device refused
 * ```ts
 * import { GpuOutOfMemoryError } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const e = new GpuOutOfMemoryError("the GPU ran out of memory: Not enough memory left");
 * assert.ok(e instanceof Error && e.name === "GpuOutOfMemoryError");
 * ```
 */
export class GpuOutOfMemoryError extends OwlError {}

/**
 * The WebGPU device reported a validation or internal error, so whatever it computed since is not
 * to be trusted; `Gpu` raises it at the next readback or sync. It is not an {@linkcode OwlError}:
 * it means a kernel or a limit that owlgpu should have checked, a bug, so the CLIs print its stack
 * and exit with status 2.
 *
 * @example An invalid copy (3 bytes, not a multiple of 4) fails the next readback
 * ```ts
 * import { Gpu, GpuDeviceError } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const src = gpu.buffer(16, "src"), dst = gpu.buffer(16, "dst");
 * const encoder = gpu.device.createCommandEncoder();
 * encoder.copyBufferToBuffer(src, 0, dst, 0, 3);
 * gpu.device.queue.submit([encoder.finish()]);
 * await assert.rejects(gpu.readF32(dst), (e) => e instanceof GpuDeviceError && /COPY_BUFFER_ALIGNMENT/.test(e.message));
 * gpu.destroy();
 * ```
 */
export class GpuDeviceError extends Error {
  /** Create the error; `options.cause` keeps the device's GPUError. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "GpuDeviceError";
  }
}
