/**
 * Per-device scratch buffers that launchers keep between calls (the uniform X slots of the
 * texture GEMV and the sparse kernels): one buffer per {@linkcode Gpu}, grown on demand, freed
 * with the device or by `release`.
 * @module
 */
import type { Gpu } from "./device.ts";

/** One lazily created, growable scratch buffer per device. */
export class DeviceScratch {
  private readonly buffers = new WeakMap<Gpu, GPUBuffer>();

  /**
   * `usage` is read when the first buffer is made, not when the module loads: a page without WebGPU
   * has no GPUBufferUsage, and importing owlgpu there must still work (Gpu.create then says why).
   */
  constructor(private readonly label: string, private readonly usage: () => number) {}

  /**
   * This device's buffer, at least `bytes` long: created on first use, replaced by a larger one
   * (twice the old size, at most the binding limit, or `bytes` if more) when too small.
   */
  get(gpu: Gpu, bytes: number): GPUBuffer {
    const have = this.buffers.get(gpu);
    if (have && have.size >= bytes) return have;
    if (have) {
      gpu.flush(); // recorded work may still read the old one: submit it before destroying
      have.destroy();
    }
    const size = Math.max(bytes, have ? Math.min(gpu.maxBinding, have.size * 2) : 0);
    const b = gpu.device.createBuffer({ label: this.label, size, usage: this.usage() });
    this.buffers.set(gpu, b);
    return b;
  }

  /** Free this device's buffer (after submitting recorded work); a no-op when there is none. */
  release(gpu: Gpu): void {
    const b = this.buffers.get(gpu);
    if (!b) return;
    gpu.flush();
    b.destroy();
    this.buffers.delete(gpu);
  }
}
