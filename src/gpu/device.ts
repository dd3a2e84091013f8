/**
 * The WebGPU runtime: adapter and device with the adapter's own limits, feature detection,
 * tracked buffers (a leak counter the tests check), a pipeline cache keyed by kernel options,
 * and dispatch batching (many dispatches, one submit). It knows no model and no pruning.
 * @module
 */
import { GEMV_TEX_SLOT_BYTES } from "../../kernels/linear_gemv_tex.ts";
import { SPARSE_SLOT_BYTES } from "../../kernels/sparse_linear.ts";
import { GpuDeviceError, GpuOutOfMemoryError, GpuUnavailableError, UnsupportedError } from "../errors.ts";
import { type CpuProfile, cpuProfile } from "./profile.ts";

/** The Deno namespace, or undefined in a browser. */
const deno = (globalThis as { Deno?: typeof Deno }).Deno;

/**
 * Environment switch that disables f16 kernels even where `shader-f16` exists.
 *
 * @example Force f32 kernels for every Gpu the process creates (like `OWLGPU_FORCE_F32=1 deno run ...`)
 * ```ts
 * import { FORCE_F32_ENV, Gpu } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(FORCE_F32_ENV, "OWLGPU_FORCE_F32");
 * Deno.env.set(FORCE_F32_ENV, "1");
 * const gpu = await Gpu.create();
 * assert.equal(gpu.f16, false); // even on an adapter with shader-f16
 * gpu.destroy();
 * Deno.env.delete(FORCE_F32_ENV);
 * ```
 */
export const FORCE_F32_ENV = "OWLGPU_FORCE_F32";

/**
 * Options of {@linkcode Gpu.create}.
 *
 * @example Ask for f32 kernels only, whatever the adapter offers
 * ```ts
 * import { Gpu, type GpuOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const options: GpuOptions = { forceF32: true, powerPreference: "low-power" };
 * const gpu = await Gpu.create(options);
 * assert.equal(gpu.f16, false);
 * gpu.destroy();
 * // asGpu: the GPU kernels and layouts on any adapter (how a machine without a GPU tests them)
 * const asGpu = await Gpu.create({ asGpu: true });
 * assert.equal(asGpu.isCpu, false);
 * asGpu.destroy();
 * ```
 */
export interface GpuOptions {
  /** Use f32 kernels even where `shader-f16` exists (also: OWLGPU_FORCE_F32=1). */
  forceF32?: boolean;
  /** Pass through to requestAdapter. */
  powerPreference?: GPUPowerPreference;
  /**
   * Choose kernels and weight layouts as on a GPU even on a CPU adapter (`isCpu` false), so a
   * machine without a GPU can test the GPU code paths (slowly).
   */
  asGpu?: boolean;
}

/**
 * A buffer binding: a whole buffer, or a byte range of one.
 *
 * @example Run a kernel on 4 elements in the middle of a buffer, through a byte-range binding
 * ```ts
 * import { type Binding, Gpu } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const wgsl = `@group(0) @binding(0) var<storage, read_write> x: array<f32>;
 * @compute @workgroup_size(4) fn main(@builtin(global_invocation_id) id: vec3u) {
 *   x[id.x] = 2.0 * x[id.x];
 * }`;
 * // A range binding's offset must be a multiple of minStorageBufferOffsetAlignment (256 bytes, typically).
 * const at = gpu.device.limits.minStorageBufferOffsetAlignment / 4; // in f32 elements
 * const buf = gpu.upload(Float32Array.from({ length: 2 * at }, (_, i) => i), "x");
 * const range: Binding = { buffer: buf, offset: at * 4, size: 4 * 4 }; // x[0] in WGSL is element `at`
 * gpu.dispatch(gpu.pipeline("double-x", () => wgsl), [range], null, 1);
 * const out = await gpu.readF32(buf, at - 1, 6);
 * assert.deepEqual([...out], [at - 1, 2 * at, 2 * (at + 1), 2 * (at + 2), 2 * (at + 3), at + 4]);
 * gpu.release(buf);
 * gpu.destroy();
 * ```
 */
export type Binding = GPUBuffer | { buffer: GPUBuffer; offset: number; size: number };

/**
 * The uniform X slot of the CPU adapters' GEMVs (texture and sparse), the larger of the two kernels'
 * slots: 64 KiB, WebGPU's default maxUniformBufferBindingSize, so at most 16384 f32 columns.
 */
export const UNIFORM_X_BYTES: number = Math.max(GEMV_TEX_SLOT_BYTES, SPARSE_SLOT_BYTES);

/**
 * Whether `b` can be bound at offset 0 as a GEMV's uniform X slot ({@linkcode UNIFORM_X_BYTES}):
 * UNIFORM usage and at least that size ({@linkcode Gpu.gemvInput} makes such buffers).
 */
export function readableAsUniformX(b: GPUBuffer): boolean {
  return (b.usage & GPUBufferUsage.UNIFORM) !== 0 && b.size >= UNIFORM_X_BYTES;
}

const UNIFORM_SLOT = 256; // minUniformBufferOffsetAlignment is at most 256
const UNIFORM_ARENA_SLOTS = 1024;

function envForceF32(): boolean {
  try {
    const v = deno?.env.get(FORCE_F32_ENV);
    return v !== undefined && v !== "" && v !== "0";
  } catch {
    return false; // no env permission, or a browser
  }
}

/**
 * Deno's variable naming the WebGPU backends a runtime enumerates when it first asks for an adapter.
 * On Linux {@linkcode Gpu.create} sets it to `vulkan` when it is unset and env access is granted
 * (OpenGL's libraries, loaded otherwise, can abort the process when a worker thread ends); set it
 * yourself to choose otherwise.
 *
 * @example After the first Gpu on Linux, the variable names a backend (`vulkan` unless you chose one)
 * ```ts
 * import { Gpu, WEBGPU_BACKEND_ENV } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(WEBGPU_BACKEND_ENV, "DENO_WEBGPU_BACKEND");
 * const gpu = await Gpu.create();
 * if (Deno.build.os === "linux") assert.notEqual(Deno.env.get(WEBGPU_BACKEND_ENV), undefined);
 * gpu.destroy();
 * ```
 */
export const WEBGPU_BACKEND_ENV = "DENO_WEBGPU_BACKEND";

/**
 * On Linux, have Deno's WebGPU enumerate Vulkan only, unless {@linkcode WEBGPU_BACKEND_ENV} is set.
 *
 * By default it also enumerates OpenGL, which loads libglvnd's libEGL and libGLdispatch into the
 * thread that asks; they leave per-thread data behind, and when that thread ends (each `deno test`
 * file runs on a worker thread) the heap is sometimes found corrupt and the process aborts
 * ("corrupted size vs. prev_size", "free(): invalid pointer"), after every test passed. Measured
 * with four test files that only open a device: 7 aborted runs in 300 by default, 0 in 600 with
 * Vulkan only. The kernels are written and tested for Vulkan (and Metal, D3D12) adapters only.
 * Deno reads the variable when a runtime first asks for an adapter, so it is set just before that.
 */
function preferVulkanOnLinux(): void {
  if (deno?.build.os !== "linux") return;
  try {
    const env = deno.permissions.querySync({ name: "env", variable: WEBGPU_BACKEND_ENV });
    if (env.state === "granted" && deno.env.get(WEBGPU_BACKEND_ENV) === undefined) {
      deno.env.set(WEBGPU_BACKEND_ENV, "vulkan");
    }
  } catch {
    // No permission API or env access: keep the runtime's default backends.
  }
}

/** Buffers `Gpu.release` destroyed (WebGPU cannot be asked whether a buffer was destroyed). */
const releasedBuffers = new WeakSet<GPUBuffer>();

/** Whether `Gpu.release` destroyed `buffer`: the launchers refuse such a buffer at the call. */
export function wasReleased(buffer: GPUBuffer): boolean {
  return releasedBuffers.has(buffer);
}

/**
 * One GPU device plus the bookkeeping every kernel launch needs.
 *
 * @example Your own WGSL kernel: y = a x + y, with the uniform `a` in binding 0 and batched dispatches
 * ```ts
 * import { Gpu } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const gpu = await Gpu.create();
 * const wgsl = `@group(0) @binding(0) var<uniform> a: vec4f;
 * @group(0) @binding(1) var<storage, read> x: array<f32>;
 * @group(0) @binding(2) var<storage, read_write> y: array<f32>;
 * @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) {
 *   if (id.x < arrayLength(&y)) { y[id.x] += a.x * x[id.x]; }
 * }`;
 * const x = gpu.upload(new Float32Array([1, 2, 3]), "x");
 * const y = gpu.upload(new Float32Array([10, 20, 30]), "y");
 * const axpy = gpu.pipeline("axpy", () => wgsl); // compiled once per key, then cached
 * gpu.dispatch(axpy, [x, y], new Float32Array([2, 0, 0, 0]), 1); // recorded, not yet submitted
 * gpu.dispatch(axpy, [x, y], new Float32Array([-1, 0, 0, 0]), 1);
 * assert.deepEqual([...await gpu.readF32(y)], [11, 22, 33]); // y + 2x - x; the read submits the batch
 * assert.equal(gpu.liveBuffers, 2);
 * gpu.release(x, y);
 * assert.equal(gpu.liveBuffers, 0);
 * gpu.destroy();
 * ```
 */
export class Gpu {
  /** `shader-f16` present and not disabled: f16 weights stay f16 on the GPU. */
  readonly f16: boolean;
  /** `timestamp-query` present: benchmarks read GPU time. */
  readonly timestamps: boolean;
  /** A CPU implementation (lavapipe, SwiftShader): kernels pick CPU-friendly tilings. */
  readonly isCpu: boolean;
  /** On a CPU adapter, how its linears read their operands (src/gpu/profile.ts); undefined on GPUs. */
  readonly cpu: CpuProfile | undefined;
  /** The adapter's description (or vendor, architecture and device), for reports and logs. */
  readonly adapterName: string;
  /** The device's maxStorageBufferBindingSize in bytes: matrices are split in row chunks under it. */
  readonly maxBinding: number;
  /** The device's maxBufferSize in bytes: larger buffers are refused. */
  readonly maxBuffer: number;

  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private live = 0;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly uniformArena: GPUBuffer;
  private readonly uniformData = new Uint8Array(UNIFORM_SLOT * UNIFORM_ARENA_SLOTS);
  private uniformSlots = 0;
  /** Dispatches recorded so far (for tests and stats). */
  dispatchCount = 0;
  /** Command buffers submitted so far (for tests and stats). */
  submitCount = 0;
  private destroyed = false;
  /** The first error the device reported (see throwIfDeviceFailed). */
  private deviceError: GPUError | undefined;
  // A device still open when Deno tears its runtime down (a test file's worker) made the heap
  // corruption that preferVulkanOnLinux explains about 4x likelier, so a Gpu its owner forgot is
  // destroyed on the runtime's "unload" event (Deno only: in a page an unload listener costs the
  // back/forward cache). ARCHITECTURE.md has the measurements.
  private readonly destroyOnUnload = () => this.destroy();

  private constructor(
    readonly device: GPUDevice,
    info: GPUAdapterInfo,
    f16: boolean,
    timestamps: boolean,
    asGpu: boolean,
  ) {
    this.f16 = f16;
    this.timestamps = timestamps;
    const desc = info.description || `${info.vendor} ${info.architecture} ${info.device}`.trim();
    this.adapterName = desc || "unknown adapter";
    this.isCpu = !asGpu && (info.isFallbackAdapter === true ||
      /llvmpipe|lavapipe|swiftshader|software/i.test(this.adapterName));
    this.cpu = this.isCpu ? cpuProfile(this.adapterName) : undefined;
    this.maxBinding = device.limits.maxStorageBufferBindingSize;
    this.maxBuffer = device.limits.maxBufferSize;
    this.uniformArena = device.createBuffer({
      label: "uniform-arena",
      size: this.uniformData.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    if (deno) globalThis.addEventListener("unload", this.destroyOnUnload);
    device.addEventListener("uncapturederror", (ev) => {
      const error = (ev as GPUUncapturedErrorEvent).error;
      console.error("WebGPU error:", error.message);
      this.deviceError ??= error;
    });
  }

  /**
   * After the device reported an error (WebGPU only logs it and goes on), refuse to hand out any
   * result: a rejected pipeline or buffer leaves its kernels without effect, and the numbers read
   * back would be silently wrong.
   */
  private throwIfDeviceFailed(): void {
    const error = this.deviceError;
    if (error === undefined) return;
    if (typeof GPUOutOfMemoryError !== "undefined" && error instanceof GPUOutOfMemoryError) {
      throw new GpuOutOfMemoryError(
        `the GPU ran out of memory (${error.message}); use a smaller model, fewer or shorter windows ` +
          `(--nsamples, --seqlen, --eval-windows), or a GPU with more memory`,
        { cause: error },
      );
    }
    throw new GpuDeviceError(
      `the GPU reported an error, so results from this device would be wrong: ${error.message}`,
      { cause: error },
    );
  }

  /**
   * Acquire an adapter and a device with the adapter's own limits. On Linux, Deno is first told to
   * enumerate Vulkan adapters only, unless {@linkcode WEBGPU_BACKEND_ENV} is already set.
   */
  static async create(options: GpuOptions = {}): Promise<Gpu> {
    const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
    if (!gpu) {
      throw new GpuUnavailableError(
        "WebGPU is not available in this runtime (navigator.gpu is missing). Use Deno 2 or a browser with WebGPU.",
      );
    }
    preferVulkanOnLinux();
    const adapter = await gpu.requestAdapter({
      powerPreference: options.powerPreference ?? "high-performance",
    });
    if (!adapter) {
      throw new GpuUnavailableError(
        "no WebGPU adapter found. On a machine without a GPU install Mesa's software Vulkan driver: " +
          "`apt-get install -y mesa-vulkan-drivers libvulkan1`; with a GPU, install its Vulkan driver.",
      );
    }
    const wantF16 = !(options.forceF32 || envForceF32());
    const features: GPUFeatureName[] = [];
    const hasF16 = adapter.features.has("shader-f16");
    const hasTs = adapter.features.has("timestamp-query");
    if (hasF16 && wantF16) features.push("shader-f16");
    if (hasTs) features.push("timestamp-query");
    const l = adapter.limits;
    const device = await adapter.requestDevice({
      requiredFeatures: features,
      requiredLimits: {
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxBufferSize: l.maxBufferSize,
        maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
        maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      },
    });
    return new Gpu(device, adapter.info, hasF16 && wantF16, hasTs, options.asGpu === true);
  }

  // ---- buffers ------------------------------------------------------------------------------

  /** Number of buffers created through this object and not yet released. */
  get liveBuffers(): number {
    return this.live;
  }

  /** A storage buffer (zero-initialised by WebGPU). Size is rounded up to 4 bytes. */
  buffer(byteSize: number, label: string, extraUsage = 0): GPUBuffer {
    const size = Math.max(4, Math.ceil(byteSize / 4) * 4);
    if (size > this.maxBuffer) {
      throw new UnsupportedError(
        `buffer "${label}" needs ${size} bytes but this adapter allows at most ${this.maxBuffer} per buffer`,
      );
    }
    const b = this.device.createBuffer({
      label,
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST | extraUsage,
    });
    this.live++;
    return b;
  }

  /**
   * A storage buffer for an activation that feeds linears at M = 1. On CPU adapters whose GEMVs
   * gather X from uniform slots (`cpu.uniformX`: lavapipe) it is also a UNIFORM buffer of at
   * least {@linkcode UNIFORM_X_BYTES}, so the texture and sparse GEMVs bind it in place as their
   * uniform X slot instead of copying or packing X into one first: one fewer
   * dispatch per linear, which is most of a small model's decode step on lavapipe (stories15M
   * sparse: 135 dispatches a token to 93).
   *
   * @example Both GEMVs read such a buffer in place; any other X is copied into their slot first
   * ```ts
   * import { Gpu, readableAsUniformX, UNIFORM_X_BYTES } from "@owlgpu/owlgpu";
   * import assert from "node:assert/strict";
   *
   * const gpu = await Gpu.create();
   * const x = gpu.gemvInput(288 * 4, "xn");
   * const inPlace = gpu.cpu?.uniformX === true;
   * assert.equal(readableAsUniformX(x), inPlace);
   * assert.equal(x.size, inPlace ? UNIFORM_X_BYTES : 288 * 4);
   * assert.equal(readableAsUniformX(gpu.buffer(UNIFORM_X_BYTES, "plain")), false);
   * gpu.release(x);
   * gpu.destroy();
   * ```
   */
  gemvInput(byteSize: number, label: string): GPUBuffer {
    if (!this.cpu?.uniformX) return this.buffer(byteSize, label);
    return this.buffer(Math.max(byteSize, UNIFORM_X_BYTES), label, GPUBufferUsage.UNIFORM);
  }

  /** A storage buffer holding `data`. */
  upload(data: ArrayBufferView, label: string): GPUBuffer {
    const b = this.buffer(data.byteLength, label);
    this.write(b, data);
    return b;
  }

  /**
   * Write bytes into a buffer, after all work recorded so far (queue writes are ordered only
   * against submits, so pending dispatches are flushed first). Pads to 4 bytes.
   */
  write(buffer: GPUBuffer, data: ArrayBufferView, byteOffset = 0): void {
    this.flush();
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength % 4 !== 0) {
      const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
      padded.set(bytes);
      bytes = padded;
    }
    this.device.queue.writeBuffer(buffer, byteOffset, bytes as Uint8Array<ArrayBuffer>);
  }

  /** Destroy buffers created by `buffer`/`upload`; releasing one twice is harmless. */
  release(...buffers: (GPUBuffer | null | undefined)[]): void {
    for (const b of buffers) {
      if (!b || releasedBuffers.has(b)) continue;
      b.destroy();
      releasedBuffers.add(b);
      this.live--;
    }
  }

  // ---- pipelines ----------------------------------------------------------------------------

  /** Compile once per key. The key must encode every option the WGSL depends on, never shapes. */
  pipeline(key: string, wgsl: () => string): GPUComputePipeline {
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ label: key, code: wgsl() });
      p = this.device.createComputePipeline({
        label: key,
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** Compute pipelines in the cache (one per distinct kernel key). */
  get pipelineCount(): number {
    return this.pipelines.size;
  }

  // ---- dispatch -----------------------------------------------------------------------------

  /**
   * Record one dispatch into the current batch. Binding 0 is the uniform block when `uniforms`
   * is given; storage bindings follow in order. `workgroups` is a linear count, folded into a
   * 2-D grid when it exceeds the per-dimension limit (kernels linearise with num_workgroups).
   */
  dispatch(
    pipeline: GPUComputePipeline,
    bindings: Binding[],
    uniforms: ArrayBufferView | null,
    workgroups: number,
  ): void {
    if (workgroups <= 0) return;
    if (uniforms && this.uniformSlots === UNIFORM_ARENA_SLOTS) this.flush();
    const entries: GPUBindGroupEntry[] = [];
    let binding = 0;
    if (uniforms) {
      const slot = this.uniformSlots++;
      this.uniformData.set(
        new Uint8Array(uniforms.buffer, uniforms.byteOffset, uniforms.byteLength),
        slot * UNIFORM_SLOT,
      );
      entries.push({
        binding: binding++,
        resource: { buffer: this.uniformArena, offset: slot * UNIFORM_SLOT, size: uniforms.byteLength },
      });
    }
    for (const b of bindings) {
      entries.push({ binding: binding++, resource: b instanceof GPUBuffer ? { buffer: b } : b });
    }
    const group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    if (!this.pass) {
      this.encoder ??= this.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass();
    }
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, group);
    const maxDim = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (workgroups <= maxDim) this.pass.dispatchWorkgroups(workgroups);
    else this.pass.dispatchWorkgroups(maxDim, Math.ceil(workgroups / maxDim));
    this.dispatchCount++;
  }

  /** The open command encoder (ends any open compute pass), for copies and timestamp writes. */
  commandEncoder(): GPUCommandEncoder {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  /**
   * Record `body` (dispatches, and any copies it makes) between two empty compute passes that
   * write the GPU time to `querySet` at indices `begin` (before) and `begin + 1` (after); needs
   * `timestamps`. Empty bracketing passes, not one pass around the body, so a body that ends the
   * pass (a copy into a texture, say) is still timed whole.
   */
  timedPass(querySet: GPUQuerySet, begin: number, body: () => void): void {
    this.commandEncoder()
      .beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: begin } })
      .end();
    body();
    this.commandEncoder()
      .beginComputePass({ timestampWrites: { querySet, endOfPassWriteIndex: begin + 1 } })
      .end();
  }

  /** Submit everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    const enc = this.commandEncoder();
    if (this.uniformSlots > 0) {
      this.device.queue.writeBuffer(
        this.uniformArena,
        0,
        this.uniformData,
        0,
        this.uniformSlots * UNIFORM_SLOT,
      );
    }
    this.device.queue.submit([enc.finish()]);
    this.encoder = null;
    this.uniformSlots = 0;
    this.submitCount++;
  }

  /** Copy between buffers, in order with the recorded dispatches. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.commandEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
  }

  /** Submit pending work and read bytes back. */
  async read(src: GPUBuffer, byteOffset = 0, byteSize = src.size - byteOffset): Promise<ArrayBuffer> {
    const staging = this.device.createBuffer({
      label: "readback",
      size: Math.ceil(byteSize / 4) * 4,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.copy(src, byteOffset, staging, 0, Math.ceil(byteSize / 4) * 4);
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      this.throwIfDeviceFailed(); // the cause, where the device reported one
      throw e;
    }
    const out = staging.getMappedRange().slice(0, byteSize);
    staging.unmap();
    staging.destroy();
    this.throwIfDeviceFailed();
    return out;
  }

  /**
   * Read `count` f32 values (default: to the end) starting at element `offsetElems` of `src` back to the
   * host, after submitting the pending work.
   */
  async readF32(src: GPUBuffer, offsetElems = 0, count?: number): Promise<Float32Array> {
    const n = count ?? src.size / 4 - offsetElems;
    return new Float32Array(await this.read(src, offsetElems * 4, n * 4));
  }

  /**
   * Read `count` u32 values (default: to the end) starting at element `offsetElems` of `src` back to the
   * host, after submitting the pending work.
   */
  async readU32(src: GPUBuffer, offsetElems = 0, count?: number): Promise<Uint32Array> {
    const n = count ?? src.size / 4 - offsetElems;
    return new Uint32Array(await this.read(src, offsetElems * 4, n * 4));
  }

  /** Wait until the GPU has finished everything submitted. */
  async sync(): Promise<void> {
    await this.done();
  }

  /**
   * Submit pending work and return, without waiting, a promise that settles when the GPU has
   * finished it: hold it in an `InFlight` (src/gpu/inflight.ts) to keep recording meanwhile.
   */
  done(): Promise<void> {
    this.flush();
    return this.device.queue.onSubmittedWorkDone().then(() => this.throwIfDeviceFailed());
  }

  /**
   * Submit the pending work, then destroy the uniform arena and the device; the Gpu is unusable afterwards.
   * Calling it again does nothing. In Deno a Gpu not destroyed by its owner is destroyed when the runtime
   * unloads (the end of a program, or of a test file's worker).
   */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (deno) globalThis.removeEventListener("unload", this.destroyOnUnload);
    this.flush();
    this.uniformArena.destroy();
    this.device.destroy();
  }
}
