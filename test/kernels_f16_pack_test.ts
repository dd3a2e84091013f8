/**
 * f32 <-> f16 storage kernels (kernels/f16_pack.ts, `packF16` / `unpackF16`) against the host's
 * conversions (src/model/dtype.ts: round to nearest even), bit for bit, on uneven even lengths and on
 * the values where rounding is delicate: ties, f16 subnormals (where SwiftShader's pack2x16float
 * rounded differently), the edge of the range, signed zeros, infinities and NaN.
 * @module
 */
import assert from "node:assert/strict";
import { ArgumentError } from "../src/errors.ts";
import { Gpu } from "../src/gpu/device.ts";
import { f16ToF32, f32ToF16 } from "../src/model/dtype.ts";
import { packF16, unpackF16 } from "../src/ops/basic.ts";
import { rng } from "./ref/kernels_ref.ts";

const gpu = await Gpu.create();

/** Values over f16's whole range and its edges, plus exact ties between two f16 neighbours. */
function delicateValues(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const special = [
    0,
    -0,
    1,
    -1,
    65504,
    -65504,
    65519.996,
    65520,
    -70000,
    6.1035156e-5,
    5.9604645e-8,
    2.9802322e-8,
    Infinity,
    -Infinity,
    NaN,
  ];
  return Float32Array.from({ length: n }, (_, i) => {
    if (i < special.length) return special[i];
    const kind = i % 4;
    const mag = 2 ** (r() * 44 - 28); // 2^-28 .. 2^16
    const sign = r() < 0.5 ? -1 : 1;
    if (kind === 0) { // a tie: halfway between two f16 neighbours (in the normal range)
      const h = f16ToF32(f32ToF16(Float32Array.of(sign * Math.min(mag, 60000))))[0];
      const ulp = 2 ** (Math.floor(Math.log2(Math.abs(h) || 1)) - 10);
      return Math.abs(h) >= 2 ** -14 ? h + sign * ulp / 2 : h;
    }
    return sign * mag;
  });
}

Deno.test("packF16 matches the host's round-to-nearest-even f16, bit for bit, and unpackF16 inverts it", async () => {
  for (const [n, seed] of [[2, 1], [1000, 2], [123_456, 3]]) {
    const x = delicateValues(n, seed);
    const src = gpu.upload(x, "x"), half = gpu.buffer(n * 2, "half"), back = gpu.buffer(n * 4, "back");
    packF16(gpu, src, half, n);
    unpackF16(gpu, half, back, n);
    const got = new Uint16Array(await gpu.read(half), 0, n);
    const want = f32ToF16(x);
    const bad = want.findIndex((w, i) => w !== got[i]);
    assert.equal(
      bad,
      -1,
      `n ${n}: ${x[bad]} packed to 0x${got[bad]?.toString(16)}, host 0x${want[bad]?.toString(16)}`,
    );
    const b = await gpu.readF32(back);
    assert.deepEqual(new Uint32Array(b.buffer), new Uint32Array(f16ToF32(want).buffer), `n ${n}: unpack`);
    gpu.release(src, half, back);
  }
});

Deno.test("unpackF16 decodes every finite f16 bit pattern exactly", async () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i).filter((h) => (h & 0x7c00) !== 0x7c00);
  const n = all.length; // even: 63488
  const src = gpu.upload(new Uint32Array(all.buffer), "halves"), out = gpu.buffer(n * 4, "out");
  unpackF16(gpu, src, out, n);
  assert.deepEqual(new Uint32Array((await gpu.readF32(out)).buffer), new Uint32Array(f16ToF32(all).buffer));
  gpu.release(src, out);
});

Deno.test("packF16 / unpackF16: odd counts and short buffers are ArgumentErrors", () => {
  const a = gpu.buffer(16, "a"), b = gpu.buffer(8, "b");
  try {
    assert.throws(() => packF16(gpu, a, b, 3), /n must be even/);
    assert.throws(() => packF16(gpu, a, b, 6), ArgumentError); // 6 f32 need 24 bytes
    assert.throws(() => unpackF16(gpu, b, a, 6), ArgumentError);
    assert.throws(() => packF16(gpu, a, a, 4), ArgumentError); // src and dst the same buffer
  } finally {
    gpu.release(a, b);
  }
});

Deno.test("f16 pack tests: release the device", async () => {
  await gpu.sync();
  gpu.destroy();
});
