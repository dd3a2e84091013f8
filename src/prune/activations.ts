/**
 * The calibration activations of the pruning walk: each window's block input ("in") and output
 * ("out"), kept between blocks. Where they wait is the walk's largest memory cost (2 x nsamples x
 * seqlen x dim values), so it is a choice:
 * - dtype "f32" keeps the residual stream's values; "f16" stores them as f16 pairs (half the bytes,
 *   each block input rounded to f16);
 * - on the GPU (default), or offloaded to host memory (`offload`): one window at a time is written to
 *   the GPU before its block runs, for GPUs too small to hold them all; its output is copied into an
 *   outbox of a few windows (at most 256 MiB), read back in one readback when full, since every
 *   readback costs Deno at least ~10 ms. A full outbox's readback is started, not waited for: the
 *   walk goes on recording the next windows (into the same outbox, after the readback's copy in
 *   queue order) and waits for it only when the next outbox fills, so the GPU never idles on a
 *   readback and at most two outboxes' bytes wait in readback buffers. The two places hold the
 *   same bits, so offloading changes nothing in the result.
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { InFlight } from "../gpu/inflight.ts";
import { packF16, unpackF16 } from "../ops/basic.ts";

/** The most bytes of offloaded windows waiting on the GPU for one readback. */
const OUTBOX_BYTES = 256 * 2 ** 20;

/** Where and how {@linkcode CalibrationActivations} keep the windows. */
export interface ActivationOptions {
  /** "f32" (default) or "f16". */
  dtype?: "f32" | "f16";
  /** Keep them in host memory instead of on the GPU (default false). */
  offload?: boolean;
  /** Offloaded: windows read back at once (default: up to 8, at most 256 MiB). */
  outboxWindows?: number;
}

/** Window activations of the walk, in and out, on the GPU or in host memory. */
export class CalibrationActivations {
  readonly dtype: "f32" | "f16";
  readonly offload: boolean;
  /** Bytes one window takes stored. */
  readonly bytes: number;
  #gpuIn: GPUBuffer[] = [];
  #gpuOut: GPUBuffer[] = [];
  #hostIn: Uint8Array[] = [];
  #hostOut: Uint8Array[] = [];
  /** Offloaded f16: where a window is packed before its readback and unpacked from after its upload. */
  #stage: GPUBuffer | undefined;
  /** Offloaded: windows kept since the last readback, in `#outbox` slot order. */
  #pending: { w: number; side: "in" | "out" }[] = [];
  #outbox: GPUBuffer | undefined;
  /** Offloaded: readbacks started and not yet waited for (one, while the next outbox fills). */
  #readbacks = new InFlight(1);
  /** Offloaded: windows the outbox holds. */
  readonly outboxWindows: number;

  /** `values`: values of one window (seqlen x dim), even for f16. */
  constructor(
    readonly gpu: Gpu,
    readonly windows: number,
    readonly values: number,
    opts: ActivationOptions = {},
  ) {
    this.dtype = opts.dtype ?? "f32";
    this.offload = opts.offload ?? false;
    this.bytes = values * (this.dtype === "f16" ? 2 : 4);
    this.outboxWindows = Math.max(
      1,
      Math.min(opts.outboxWindows ?? 8, windows, Math.floor(OUTBOX_BYTES / this.bytes)),
    );
    if (this.offload) {
      if (this.dtype === "f16") this.#stage = gpu.buffer(this.bytes, "calib-stage");
      this.#outbox = gpu.buffer(this.outboxWindows * this.bytes, "calib-readback");
    } else {
      this.#gpuIn = Array.from({ length: windows }, (_, w) => gpu.buffer(this.bytes, `calib-in${w}`));
      this.#gpuOut = Array.from({ length: windows }, (_, w) => gpu.buffer(this.bytes, `calib-out${w}`));
    }
  }

  /** Keep the f32 values of `x` (the residual stream) as window w's input or output. */
  async keep(w: number, side: "in" | "out", x: GPUBuffer): Promise<void> {
    const { gpu } = this;
    if (!this.offload) {
      const to = (side === "in" ? this.#gpuIn : this.#gpuOut)[w];
      if (this.dtype === "f16") packF16(gpu, x, to, this.values);
      else gpu.copy(x, 0, to, 0, this.bytes);
      return;
    }
    let from = x;
    if (this.#stage) {
      packF16(gpu, x, this.#stage, this.values);
      from = this.#stage;
    }
    gpu.copy(from, 0, this.#outbox!, this.#pending.length * this.bytes, this.bytes);
    this.#pending.push({ w, side });
    if (this.#pending.length === this.outboxWindows) await this.#readBack();
  }

  /**
   * Offloaded: start reading back the outbox's windows, then wait for the readback before it.
   * `gpu.read` records its copy before returning, so the outbox can take the next windows at once.
   */
  async #readBack(): Promise<void> {
    const pending = this.#pending;
    if (!pending.length) return;
    this.#pending = [];
    const read = this.gpu.read(this.#outbox!, 0, pending.length * this.bytes).then((buf) => {
      const bytes = new Uint8Array(buf);
      pending.forEach(({ w, side }, k) => {
        (side === "in" ? this.#hostIn : this.#hostOut)[w] = bytes.subarray(
          k * this.bytes,
          (k + 1) * this.bytes,
        );
      });
    });
    await this.#readbacks.add(read);
  }

  /** Offloaded: read back every window kept so far and wait until all are in host memory. */
  async flush(): Promise<void> {
    await this.#readBack();
    await this.#readbacks.drain();
  }

  /** Load window w's input into `x` as f32, for its block to run on. */
  restoreInput(w: number, x: GPUBuffer): void {
    const { gpu } = this;
    if (!this.offload) {
      if (this.dtype === "f16") unpackF16(gpu, this.#gpuIn[w], x, this.values);
      else gpu.copy(this.#gpuIn[w], 0, x, 0, this.bytes);
      return;
    }
    if (this.#stage) {
      gpu.write(this.#stage, this.#hostIn[w]);
      unpackF16(gpu, this.#stage, x, this.values);
    } else {
      gpu.write(x, this.#hostIn[w]);
    }
  }

  /** The outputs of one block become the inputs of the next (after `flush()`). */
  swap(): void {
    if (this.#pending.length || this.#readbacks.size) {
      throw new Error("CalibrationActivations: swap() before flush()");
    }
    [this.#gpuIn, this.#gpuOut] = [this.#gpuOut, this.#gpuIn];
    [this.#hostIn, this.#hostOut] = [this.#hostOut, this.#hostIn];
  }

  /** Free the GPU buffers and the host copies. */
  release(): void {
    this.gpu.release(...this.#gpuIn, ...this.#gpuOut, this.#stage, this.#outbox);
    this.#gpuIn = this.#gpuOut = [];
    this.#hostIn = this.#hostOut = [];
    this.#pending = [];
    this.#readbacks = new InFlight(1); // a failed walk's readbacks: their rejections are handled
    this.#stage = this.#outbox = undefined;
  }
}
