/**
 * Storage dtypes: byte sizes, safetensors dtype names, and whole-array conversion between f32 and
 * the 16-bit formats (f16, bf16). Conversions to 16 bits round to nearest, ties to even, and keep
 * NaN and ±Inf; they work on bit patterns so they run the same in every JavaScript engine.
 * Byte arrays are little-endian, as in every checkpoint format we read (and every host Deno runs on).
 * @module
 */
import { UnsupportedError } from "../errors.ts";
import type { DType } from "./config.ts";

const BYTES: Record<DType, number> = { f32: 4, f16: 2, bf16: 2 };
const SAFETENSORS_NAME: Record<DType, string> = { f32: "F32", f16: "F16", bf16: "BF16" };

/**
 * Bytes per element of a dtype.
 * @example
 * ```ts
 * dtypeBytes("bf16"); // 2
 * ```
 */
export function dtypeBytes(dtype: DType): number {
  return BYTES[dtype];
}

/** The safetensors header spelling of a dtype ("F32", "F16", "BF16"). */
export function safetensorsDtypeName(dtype: DType): string {
  return SAFETENSORS_NAME[dtype];
}

/**
 * Parse a safetensors dtype string. Anything but F32/F16/BF16 (I8, F64, F8_E4M3...) throws
 * UnsupportedError naming the dtype, the tensor and, if given, the file.
 */
export function parseSafetensorsDtype(name: string, tensor: string, file?: string): DType {
  switch (name) {
    case "F32":
      return "f32";
    case "F16":
      return "f16";
    case "BF16":
      return "bf16";
  }
  const where = file ? `${file}: ` : "";
  throw new UnsupportedError(
    `${where}tensor ${tensor} has dtype ${JSON.stringify(name)}; owlgpu reads only F32, F16 and BF16 ` +
      `(dequantize the checkpoint first)`,
  );
}

/** f16 bit pattern → f32 value, for all 65536 patterns (built on first use). */
let f16Table: Float32Array | undefined;

function buildF16Table(): Float32Array {
  const table = new Float32Array(65536);
  const bits = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      // Zero or subnormal: mant * 2^-24 is exact in f32.
      const v = mant * 2 ** -24;
      table[h] = sign ? -v : v;
    } else if (exp === 0x1f) {
      bits[h] = (sign | 0x7f800000 | (mant << 13)) >>> 0; // Inf, or NaN with its payload
    } else {
      bits[h] = (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0; // rebias 15 → 127
    }
  }
  return table;
}

/** Convert f16 bit patterns to f32 values. */
export function f16ToF32(src: Uint16Array): Float32Array {
  const table = f16Table ??= buildF16Table();
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]];
  return out;
}

/** Round one f32 bit pattern to f16, ties to even. */
function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0); // NaN stays NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → Inf
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal → ±0
    // Subnormal: shift the full 24-bit significand down to units of 2^-24.
    const m = mant | 0x800000;
    const shift = 14 - e;
    return sign | roundShift(m, shift);
  }
  // A mantissa carry into the exponent is the correct rounding (up to Inf).
  return sign | ((e << 10) + roundShift(mant, 13));
}

/** m >> shift rounded to nearest, ties to even. */
function roundShift(m: number, shift: number): number {
  const q = m >>> shift;
  const rem = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rem > half || (rem === half && (q & 1)) ? q + 1 : q;
}

/** Convert f32 values to f16 bit patterns (round to nearest even; NaN/Inf kept; overflow → Inf). */
export function f32ToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16(bits[i]);
  return out;
}

/** Convert bf16 bit patterns to f32 values (exact: bf16 is the top half of an f32). */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}

/** Convert f32 values to bf16 bit patterns (round to nearest even; NaN/Inf kept). */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const x = bits[i];
    if ((x & 0x7fffffff) > 0x7f800000) {
      out[i] = (x >>> 16) | 0x40; // quiet NaN; keeps a NaN whose payload sits in the low half
    } else {
      out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
  }
  return out;
}

/** Copy bytes into a fresh, aligned buffer (a view into a file buffer may sit at any offset). */
function aligned(raw: Uint8Array): ArrayBuffer {
  const buf = new ArrayBuffer(raw.byteLength);
  new Uint8Array(buf).set(raw);
  return buf;
}

/**
 * Decode little-endian raw bytes of `dtype` into a new Float32Array (never a view of `raw`).
 * @example
 * ```ts
 * bytesToF32(new Uint8Array([0x00, 0x3c]), "f16"); // Float32Array [1]
 * ```
 */
export function bytesToF32(raw: Uint8Array, dtype: DType): Float32Array {
  const buf = aligned(raw);
  switch (dtype) {
    case "f32":
      return new Float32Array(buf);
    case "f16":
      return f16ToF32(new Uint16Array(buf));
    case "bf16":
      return bf16ToF32(new Uint16Array(buf));
  }
}

/** Encode f32 values as little-endian raw bytes of `dtype`. For f32 the result is a view of `data`. */
export function f32ToBytes(data: Float32Array, dtype: DType): Uint8Array {
  switch (dtype) {
    case "f32":
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    case "f16": {
      const h = f32ToF16(data);
      return new Uint8Array(h.buffer);
    }
    case "bf16": {
      const h = f32ToBf16(data);
      return new Uint8Array(h.buffer);
    }
  }
}

/** f16's largest finite value; finite values of magnitude 65520 and above round to infinity. */
const F16_ROUNDS_TO_INF = 65520;

/**
 * Index of the first finite value of `data` that f16 cannot hold (it would round to ±Inf), or -1.
 *
 * @example 65504 is f16's largest value; 65520 already rounds to Inf; Inf itself is no overflow
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(firstBeyondF16(Float32Array.of(1, -65504, Infinity, 65519)), -1);
 * assert.equal(firstBeyondF16(Float32Array.of(1, 2, -65520)), 2);
 * ```
 */
export function firstBeyondF16(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    const a = Math.abs(data[i]);
    if (a >= F16_ROUNDS_TO_INF && a !== Infinity) return i;
  }
  return -1;
}

/**
 * {@linkcode f32ToBytes}, refusing (UnsupportedError naming `what` and the index, and saying `fix`) a
 * finite value that f16 would store as ±Inf, which a bf16 or f32 checkpoint can hold.
 */
export function f32ToBytesInRange(
  data: Float32Array,
  dtype: DType,
  what: string,
  fix = "store this model as bf16 or f32",
): Uint8Array {
  if (dtype === "f16") {
    const i = firstBeyondF16(data);
    if (i >= 0) {
      throw new UnsupportedError(
        `${what}[${i}] = ${data[i]} is beyond f16's range (65504) and would be stored as Inf; ${fix}`,
      );
    }
  }
  return f32ToBytes(data, dtype);
}
