/**
 * Tests of dtype conversion (src/model/dtype.ts), the safetensors reader and writers
 * (src/model/safetensors.ts), and sharded Hugging Face directories (index.json + shards).
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ArgumentError, ModelFormatError, UnsupportedError } from "../src/errors.ts";
import { FileByteSource, MemoryByteSource } from "../src/model/bytes.ts";
import { llamaConfig } from "../src/model/config.ts";
import {
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToBytes,
  f32ToF16,
  parseSafetensorsDtype,
} from "../src/model/dtype.ts";
import { hfConfigJson } from "../src/model/export.ts";
import { expectedTensors, openHuggingFace } from "../src/model/hf.ts";
import {
  encodeSafetensors,
  SafetensorsFile,
  type SafetensorsTensor,
  writeSafetensors,
} from "../src/model/safetensors.ts";
import { randomArray } from "./ref/kernels_ref.ts";
import { randomRefModel, refModelTensors } from "./ref/forward_ref.ts";

const f16 = (...xs: number[]) => Array.from(f32ToF16(new Float32Array(xs)));
const bf16 = (...xs: number[]) => Array.from(f32ToBf16(new Float32Array(xs)));

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A safetensors file built by hand: header JSON (unpadded) + data. */
function rawFile(header: unknown, data: Uint8Array, headerLength?: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

const open = (bytes: Uint8Array) => SafetensorsFile.open(new MemoryByteSource(bytes, "t.safetensors"));

Deno.test("dtype: f32 -> f16 rounds to nearest even and keeps specials", () => {
  assert.deepEqual(f16(1, -2, 65504, 0.5), [0x3c00, 0xc000, 0x7bff, 0x3800]);
  assert.deepEqual(f16(1 + 2 ** -11, 1 + 3 * 2 ** -11), [0x3c00, 0x3c02]); // ties go to the even mantissa
  assert.deepEqual(f16(65519, 65520, 1e6, -Infinity), [0x7bff, 0x7c00, 0x7c00, 0xfc00]); // overflow → Inf
  assert.deepEqual(f16(2 ** -24, 2 ** -25, 1.5 * 2 ** -25, -0, 2 ** -14), [1, 0, 1, 0x8000, 0x0400]);
  assert.deepEqual(f16(3 * 2 ** -25), [2]); // subnormal tie: 1.5 units → 2
  const nan = f16(NaN)[0];
  assert.ok((nan & 0x7c00) === 0x7c00 && (nan & 0x3ff) !== 0);
  // A NaN whose payload is only in the bits f16 drops must stay NaN.
  const lowNaN = new Float32Array(new Uint32Array([0x7f800001]).buffer);
  assert.ok(Number.isNaN(f16ToF32(f32ToF16(lowNaN))[0]));
});

Deno.test("dtype: f16 round trip over all 65536 patterns, and agreement with Float16Array", () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const back = f32ToF16(f16ToF32(all));
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (isNaN) assert.ok(Number.isNaN(f16ToF32(Uint16Array.of(back[h]))[0]));
    else assert.equal(back[h], h, `pattern ${h.toString(16)}`);
  }
  const x = randomArray(100_000, 7, 70000);
  x.set([2 ** -24, 2 ** -25, 3 * 2 ** -25, 65520, 1e-8]);
  const engine = new Uint16Array(new Float16Array(x).buffer);
  assert.deepEqual(f32ToF16(x), engine);
});

Deno.test("dtype: bf16 conversions", () => {
  assert.deepEqual(bf16(1, -2, Infinity, -0), [0x3f80, 0xc000, 0x7f80, 0x8000]);
  assert.deepEqual(bf16(1 + 2 ** -8, 1 + 3 * 2 ** -8), [0x3f80, 0x3f82]); // ties to even
  assert.deepEqual(bf16(3.4e38), [0x7f80]); // rounds past the largest bf16 → Inf
  const lowNaN = new Float32Array(new Uint32Array([0x7f800001]).buffer);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(lowNaN))[0]));
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const back = f32ToBf16(bf16ToF32(all));
  for (let h = 0; h < 65536; h++) {
    if ((h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0) continue; // NaN payloads may be quieted
    assert.equal(back[h], h);
  }
});

Deno.test("dtype: unknown safetensors dtype names the dtype and the tensor", () => {
  assert.equal(parseSafetensorsDtype("BF16", "x"), "bf16");
  assert.throws(
    () => parseSafetensorsDtype("I8", "model.norm.weight", "a.safetensors"),
    (e: Error) =>
      e instanceof UnsupportedError && /"I8"/.test(e.message) && e.message.includes("model.norm.weight"),
  );
});

/** f32, f16 and bf16 tensors, including a scalar and an empty one. */
function sampleTensors(): SafetensorsTensor[] {
  const a = randomArray(15, 1);
  return [
    { name: "a", dtype: "f32", shape: [3, 5], data: f32ToBytes(a, "f32") },
    { name: "b.half", dtype: "f16", shape: [7], data: f32ToBytes(randomArray(7, 2), "f16") },
    { name: "c.brain", dtype: "bf16", shape: [2, 1, 3], data: f32ToBytes(randomArray(6, 3), "bf16") },
    { name: "scalar", dtype: "f32", shape: [], data: f32ToBytes(Float32Array.of(4.5), "f32") },
    { name: "empty", dtype: "f16", shape: [0, 4], data: new Uint8Array(0) },
  ];
}

async function assertReadsBack(f: SafetensorsFile, tensors: SafetensorsTensor[]): Promise<void> {
  assert.deepEqual(f.names(), tensors.map((t) => t.name));
  for (const t of tensors) {
    const e = f.entry(t.name);
    assert.deepEqual([e.dtype, e.shape], [t.dtype, t.shape]);
    assert.deepEqual(await f.readRaw(t.name), t.data);
  }
}

Deno.test("safetensors: in-memory round trip of f32/f16/bf16 with metadata", async () => {
  const tensors = sampleTensors();
  const bytes = await encodeSafetensors(tensors, { format: "pt" });
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(headerLen % 8, 0);
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLen));
  assert.match(header, /^\{.*\} *$/); // JSON, then space padding only
  const f = await open(bytes);
  assert.deepEqual(f.metadata, { format: "pt" });
  await assertReadsBack(f, tensors);
  // Values decode to what was encoded (f16/bf16 rounding included).
  const b = randomArray(7, 2);
  assert.deepEqual(await f.readF32("b.half"), f16ToF32(f32ToF16(b)));
  assert.deepEqual(await f.readF32("a"), randomArray(15, 1));
  assert.deepEqual(await f.readF32("scalar"), Float32Array.of(4.5));
});

Deno.test("safetensors: file writer (array and async iterable) matches the in-memory bytes", async () => {
  await withTempDir(async (dir) => {
    const tensors = sampleTensors();
    const want = await encodeSafetensors(tensors, { note: "x" });
    const lazy = tensors.map((t) => ({ ...t, data: () => Promise.resolve(t.data as Uint8Array) }));
    await writeSafetensors(join(dir, "a.safetensors"), lazy, { note: "x" });
    async function* gen() {
      for (const t of tensors) yield t;
    }
    await writeSafetensors(join(dir, "b.safetensors"), gen(), { note: "x" });
    assert.deepEqual(await Deno.readFile(join(dir, "a.safetensors")), want);
    assert.deepEqual(await Deno.readFile(join(dir, "b.safetensors")), want);
    const f = await SafetensorsFile.open(await FileByteSource.open(join(dir, "b.safetensors")));
    await assertReadsBack(f, tensors);
    f.close();
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["a.safetensors", "b.safetensors"]); // no temporary files left
  });
});

Deno.test("safetensors: a failed write leaves neither the file nor a temporary", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "w.safetensors");
    const bad: SafetensorsTensor[] = [
      ...sampleTensors(),
      { name: "boom", dtype: "f32", shape: [2], data: () => Promise.reject(new Error("disk on fire")) },
    ];
    await assert.rejects(() => writeSafetensors(path, bad), /disk on fire/);
    async function* gen() {
      yield* sampleTensors();
      throw new Error("generator failed");
    }
    await assert.rejects(() => writeSafetensors(path, gen()), /generator failed/);
    const wrongSize: SafetensorsTensor[] = [{ name: "x", dtype: "f32", shape: [3], data: new Uint8Array(8) }];
    await assert.rejects(() => writeSafetensors(path, wrongSize), ArgumentError);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("safetensors: corrupt and truncated files are ModelFormatErrors", async () => {
  const whole = await encodeSafetensors(sampleTensors());
  await assert.rejects(
    () => open(whole.subarray(0, whole.byteLength - 4)),
    (e: Error) =>
      e instanceof ModelFormatError && /truncated/.test(e.message) && e.message.includes("t.safetensors"),
  );
  await assert.rejects(
    () => open(rawFile({}, new Uint8Array(0), 1000)),
    (e: Error) => e instanceof ModelFormatError && /header length 1000 goes past the end/.test(e.message),
  );
  await assert.rejects(() => open(new Uint8Array(5)), ModelFormatError);
  const data = new Uint8Array(16);
  const cases: [unknown, RegExp][] = [
    [{ x: { dtype: "F32", shape: [8], data_offsets: [0, 32] } }, /x ends at data offset 32 .* 16 bytes/],
    [
      { x: { dtype: "F32", shape: [3], data_offsets: [0, 16] } },
      /x: data_offsets span 16 bytes but F32 \[3\] needs 12/,
    ],
    [{ x: { dtype: "F32", shape: [2], data_offsets: [8, 0] } }, /begin after end/],
    [{ x: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, /shape/],
    [{
      x: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      y: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
    }, /x and y overlap/],
    [{ __metadata__: { a: 1 } }, /__metadata__/],
    ["not an object", /not a JSON object/],
  ];
  for (const [header, re] of cases) {
    await assert.rejects(
      () => open(rawFile(header, data)),
      (e: Error) => e instanceof ModelFormatError && re.test(e.message),
    );
  }
  const garbage = rawFile({}, data);
  garbage[8] = 0x7b + 1; // break the JSON
  await assert.rejects(() => open(garbage), /not valid JSON/);
  await assert.rejects(
    () => open(rawFile({ x: { dtype: "I8", shape: [2], data_offsets: [0, 2] } }, data)),
    (e: Error) => e instanceof UnsupportedError && e.message.includes("I8") && e.message.includes("tensor x"),
  );
});

const TINY = llamaConfig({ dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 2, vocabSize: 11 }, { maxSeqLen: 16 });

/** A tiny LLaMA split into two shards by tensor parity, with its index. */
async function writeShardedModel(dir: string): Promise<Map<string, Float32Array>> {
  const tensors = refModelTensors(randomRefModel(TINY, 5));
  const shapes = new Map(expectedTensors(TINY).map((t) => [t.name, t.shape]));
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(hfConfigJson(TINY, "f32")));
  const shards: SafetensorsTensor[][] = [[], []];
  const weightMap: Record<string, string> = {};
  let i = 0;
  for (const [name, x] of tensors) {
    const s = i++ % 2;
    shards[s].push({ name, dtype: "f16", shape: shapes.get(name)!, data: f32ToBytes(x, "f16") });
    weightMap[name] = `model-0000${s + 1}-of-00002.safetensors`;
  }
  for (const s of [0, 1]) {
    await writeSafetensors(join(dir, `model-0000${s + 1}-of-00002.safetensors`), shards[s]);
  }
  await Deno.writeTextFile(
    join(dir, "model.safetensors.index.json"),
    JSON.stringify({ weight_map: weightMap }),
  );
  return tensors;
}

Deno.test("safetensors: a sharded directory with two shards loads every tensor", async () => {
  await withTempDir(async (dir) => {
    const tensors = await writeShardedModel(dir);
    const w = await openHuggingFace(dir);
    assert.equal(w.dtype, "f16");
    assert.equal(w.tensorNames().length, tensors.size);
    for (const [name, x] of tensors) assert.deepEqual(await w.readF32(name), f16ToF32(f32ToF16(x)), name);
    w.close();
  });
});

Deno.test("safetensors: a missing shard is a ModelFormatError naming it", async () => {
  await withTempDir(async (dir) => {
    await writeShardedModel(dir);
    await Deno.remove(join(dir, "model-00002-of-00002.safetensors"));
    await assert.rejects(
      () => openHuggingFace(dir),
      (e: Error) =>
        e instanceof ModelFormatError && e.message.includes("model-00002-of-00002.safetensors") &&
        e.message.includes("missing"),
    );
  });
});
