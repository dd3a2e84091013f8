/**
 * Argument checks shared by the launchers: a misuse is refused at the call, with a message naming
 * the function, the argument, the value and what was expected, instead of surfacing as a WebGPU
 * validation error at the next readback, or as a silently clamped (wrong) result.
 * @module
 */
import { ArgumentError, UnsupportedError } from "../errors.ts";
import { type Gpu, wasReleased } from "../gpu/device.ts";
import type { GpuMatrix } from "../gpu/matrix.ts";

/** Throw unless every count is an integer >= `min` (1 by default: sizes; 0 for offsets). */
export function checkCounts(fn: string, counts: Record<string, number>, min = 1): void {
  for (const [name, v] of Object.entries(counts)) {
    if (!Number.isSafeInteger(v) || v < min) {
      throw new ArgumentError(`${fn}: ${name} must be an integer >= ${min}, got ${v}`);
    }
  }
}

/** Throw unless `value` is one of `allowed`. */
export function checkOneOf<T extends string>(
  fn: string,
  name: string,
  value: T,
  allowed: readonly T[],
): void {
  if (!allowed.includes(value)) {
    throw new ArgumentError(
      `${fn}: ${name} must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}, got ${
        JSON.stringify(value)
      }`,
    );
  }
}

/**
 * Throw unless `buffer` is a GPU buffer of at least `bytes` bytes (`what` says what it must hold,
 * e.g. "[M, K] f32").
 */
export function checkBuffer(fn: string, name: string, buffer: GPUBuffer, bytes: number, what: string): void {
  if (typeof buffer !== "object" || buffer === null || typeof (buffer as GPUBuffer).size !== "number") {
    throw new ArgumentError(`${fn}: ${name} must be a GPUBuffer, got ${buffer}`);
  }
  if (wasReleased(buffer)) {
    throw new ArgumentError(`${fn}: ${name} was released (Gpu.release); pass a live buffer`);
  }
  if (buffer.size < bytes) {
    throw new ArgumentError(
      `${fn}: ${name} holds ${buffer.size} bytes but ${what} needs ${bytes}; pass a larger buffer or smaller shapes`,
    );
  }
}

/**
 * Throw when a buffer the kernel writes is also passed as another argument (WebGPU refuses a buffer
 * bound both read-only and writable in one dispatch; two writable views would race).
 */
export function checkDistinct(
  fn: string,
  written: Record<string, GPUBuffer>,
  others: Record<string, GPUBuffer | undefined>,
): void {
  const all = Object.entries({ ...written, ...others });
  for (const [name, b] of Object.entries(written)) {
    const other = all.find(([n, o]) => n !== name && o === b);
    if (other) throw new ArgumentError(`${fn}: ${name} and ${other[0]} must be different buffers`);
  }
}

/**
 * Throw unless `m` is a usable matrix on this device: positive integer shape, data on the GPU (not
 * released), a dtype the device has, and row chunks whose buffers hold their rows.
 */
export function checkMatrix(gpu: Gpu, fn: string, name: string, m: GpuMatrix): void {
  checkCounts(fn, { [`${name}.rows`]: m.rows, [`${name}.cols`]: m.cols });
  if (m.dtype !== "f32" && m.dtype !== "f16") {
    throw new ArgumentError(`${fn}: ${name}.dtype must be "f32" or "f16", got ${JSON.stringify(m.dtype)}`);
  }
  if (m.dtype === "f16" && !gpu.f16) {
    throw new UnsupportedError(
      `${fn}: ${name} is f16 but this device has no shader-f16; upload it as f32 (uploadMatrix(..., "f32"))`,
    );
  }
  if (m.chunks.length === 0) {
    // Released, or a linear held sparse (GpuBlock.sparse): recording nothing would leave the output stale.
    throw new ArgumentError(
      `${fn}: the ${m.rows}x${m.cols} ${name} has no data on the GPU (released, or held sparse)`,
    );
  }
  const bpv = m.dtype === "f16" ? 2 : 4;
  let next = 0;
  for (const c of m.chunks) {
    if (c.rowStart !== next || !Number.isSafeInteger(c.rows) || c.rows < 1) {
      throw new ArgumentError(
        `${fn}: ${name}'s chunks must cover rows 0..${
          m.rows - 1
        } in order; a chunk has rowStart ${c.rowStart} ` +
          `and ${c.rows} rows where row ${next} was next`,
      );
    }
    checkBuffer(
      fn,
      `${name}'s chunk at row ${c.rowStart}`,
      c.buffer,
      c.rows * m.cols * bpv,
      `${c.rows}x${m.cols} ${m.dtype}`,
    );
    next += c.rows;
  }
  if (next !== m.rows) {
    throw new ArgumentError(`${fn}: ${name}'s chunks hold ${next} rows but ${name}.rows is ${m.rows}`);
  }
}
