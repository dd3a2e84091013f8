/**
 * How a CPU adapter's kernels should read their operands. The two software Vulkan drivers we can
 * measure want opposite things (ARCHITECTURE.md, "CPU adapters: lavapipe and SwiftShader"):
 * lavapipe loads a storage vec4 through a per-lane loop with a bounds check per component, so its
 * fastest kernels read weights from read-only storage textures and gather X from 64 KiB uniform
 * slots; SwiftShader reads storage buffers faster than either (11008x4096 f32 GEMV: storage tile
 * 45-49 ms, texture GEMV 84 ms; sparse at 70%: CSR groups from storage 37 ms, the lavapipe path 81).
 * @module
 */
import type { SparseGpuLayout } from "../../kernels/sparse_linear.ts";

/**
 * Operand paths of a CPU adapter's linears, picked per driver by measurement.
 *
 * @example lavapipe and SwiftShader read their operands differently
 * ```ts
 * import { cpuProfile } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(cpuProfile("llvmpipe (LLVM 15.0.6, 256 bits)").weightTextures, true);
 * const swiftshader = cpuProfile("SwiftShader Device (Subzero)");
 * assert.deepEqual(swiftshader, {
 *   name: "swiftshader",
 *   weightTextures: false,
 *   uniformX: false,
 *   sparseLayout: "groups",
 *   sparseStorageRows: 8,
 * });
 * ```
 */
export interface CpuProfile {
  /** The driver family the choices were measured on ("lavapipe" also for unknown CPU adapters). */
  name: "lavapipe" | "swiftshader";
  /**
   * Weights read from read-only storage textures: the dense texture GEMV and GEMM (`gemvTextures`
   * when decoding) and the sparse weight streams.
   */
  weightTextures: boolean;
  /** GEMV inputs gathered from 64 KiB uniform slots (the sparse kernels' and the texture GEMV's X). */
  uniformX: boolean;
  /** Default unstructured GPU layout of uploadSparse (delta: fewer bytes; groups: a cheaper decode). */
  sparseLayout: SparseGpuLayout;
  /**
   * Activation rows per invocation of the sparse GEMM (M > 4) where X is read from storage: each
   * decoded weight serves that many rows, in as many registers.
   */
  sparseStorageRows: 4 | 8;
}

const LAVAPIPE: CpuProfile = {
  name: "lavapipe",
  weightTextures: true,
  uniformX: true,
  sparseLayout: "delta",
  sparseStorageRows: 4, // lavapipe reads X from uniform slots, with its own row tiles
};
const SWIFTSHADER: CpuProfile = {
  name: "swiftshader",
  weightTextures: false,
  uniformX: false,
  sparseLayout: "groups",
  // 8x11008x4096 f32 at 50 / 70 / 90%: 202 / 134 / 42 ms with 8 rows, 227 / 151 / 49 with 4, and
  // 16 rows slower than either at M = 16 (734 / 465 / 150 against 443 / 282 / 90 for 8).
  sparseStorageRows: 8,
};

/**
 * The operand paths for a CPU adapter named `adapterName`: SwiftShader's (matched by name, in
 * Deno through its Vulkan ICD or in Chromium) or lavapipe's, which any other CPU adapter keeps, as
 * they are the ones measured longest.
 *
 * @example Chromium names its SwiftShader adapter by vendor and architecture
 * ```ts
 * import { cpuProfile } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.equal(cpuProfile("google swiftshader").name, "swiftshader");
 * assert.equal(cpuProfile("Microsoft Basic Render Driver").name, "lavapipe");
 * ```
 */
export function cpuProfile(adapterName: string): CpuProfile {
  return /swiftshader/i.test(adapterName) ? { ...SWIFTSHADER } : { ...LAVAPIPE };
}
