/**
 * The sparse file format is readable from its documentation alone: examples/read_sparse.py, a
 * Python reader written from ARCHITECTURE.md ("File format") with no owlgpu code, turns every
 * sparse weight of a file owlgpu wrote back into the dense matrix owlgpu's own reader gives,
 * bit for bit: unstructured and N:M (2-, 4- and 8-bit positions, a partial last group), f32 and
 * f16 values, rows with no or every weight kept. It runs with the standard library only, and with
 * numpy when this machine's python3 has it (the script picks numpy when it can import it).
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { packNM, packUnstructured, type SparseMatrix, unpackSparse } from "../src/sparse/format.ts";
import { type SparseFileEntry, writeSparseSafetensors } from "../src/sparse/file.ts";

const SCRIPT = new URL("../examples/read_sparse.py", import.meta.url).pathname;

/** Deterministic values in [-1, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 31 - 1;
}

/** A random [rows, cols] matrix with about `zeros` of it zero; row 0 all zero, row 1 all kept. */
function unstructured(rows: number, cols: number, zeros: number, seed: number): Float32Array {
  const r = lcg(seed), w = new Float32Array(rows * cols);
  for (let i = 0; i < w.length; i++) {
    const row = Math.floor(i / cols);
    w[i] = row === 0 ? 0 : row === 1 || (r() + 1) / 2 >= zeros ? r() || 0.5 : 0;
  }
  return w;
}

/** A random matrix with at most `keep` nonzeros in every group of `group` columns (the last one partial). */
function nm(rows: number, cols: number, keep: number, group: number, seed: number): Float32Array {
  const r = lcg(seed), w = new Float32Array(rows * cols);
  for (let row = 0; row < rows; row++) {
    for (let g0 = 0; g0 < cols; g0 += group) {
      const width = Math.min(group, cols - g0);
      const order = Array.from({ length: width }, (_, i) => i).sort(() => r());
      for (const c of order.slice(0, Math.min(keep, width))) w[row * cols + g0 + c] = r() || 0.25;
    }
  }
  return w;
}

/** The file's sparse weights, each with the dense matrix owlgpu's reader gives. */
const WEIGHTS: { name: string; matrix: SparseMatrix }[] = [
  { name: "u.f32", matrix: packUnstructured(unstructured(37, 70, 0.6, 1), 37, 70) },
  { name: "u.f16", matrix: packUnstructured(unstructured(29, 33, 0.8, 2), 29, 33, "f16") },
  { name: "nm.2of4", matrix: packNM(nm(10, 18, 2, 4, 3), 10, 18, 2, 4) }, // 2-bit positions
  { name: "nm.4of8.f16", matrix: packNM(nm(7, 20, 4, 8, 4), 7, 20, 4, 8, "f16") }, // 4-bit
  { name: "nm.3of20", matrix: packNM(nm(5, 45, 3, 20, 5), 5, 45, 3, 20) }, // 8-bit
];

async function python(args: string[], env: Record<string, string> = {}) {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("python3", {
      args: [SCRIPT, ...args],
      env,
      stdout: "piped",
      stderr: "piped",
    })
      .output();
  } catch (e) {
    throw new Error(`python3 is needed to run examples/read_sparse.py: ${(e as Error).message}`);
  }
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function hasNumpy(): Promise<boolean> {
  const out = await new Deno.Command("python3", { args: ["-c", "import numpy"], stderr: "null" }).output();
  return out.success;
}

Deno.test("sparse reader: an independent Python reader gives owlgpu's dense matrices bit for bit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "owlgpu-reader-" });
  try {
    const path = join(dir, "model.sparse.safetensors");
    const norm = Float32Array.of(1, 2, 3);
    const entries: SparseFileEntry[] = [
      ...WEIGHTS,
      { name: "norm", dtype: "f32", shape: [3], data: new Uint8Array(norm.buffer) },
    ];
    await writeSparseSafetensors(path, entries);
    // The standard-library reader always; numpy's too where python3 has numpy.
    const modes: Record<string, Record<string, string>> = { "standard library": { OWLGPU_NO_NUMPY: "1" } };
    if (await hasNumpy()) modes.numpy = {};
    else console.log("python3 has no numpy here: only the standard-library reader ran");
    for (const [mode, env] of Object.entries(modes)) {
      const list = await python([path], env);
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, new RegExp(`5 sparse weights, 1 dense tensors \\(${mode}\\)`));
      for (const { name } of WEIGHTS) {
        assert(list.stdout.includes(`  ${name}: `), `${mode}: ${name} not listed`);
      }
      assert(list.stdout.includes("  norm: dense F32 [3]"), list.stdout);
      for (const { name, matrix } of WEIGHTS) {
        const out = join(dir, `${name}.f32`);
        const r = await python([path, "--dense", name, "--out", out], env);
        assert.equal(r.code, 0, `${mode} ${name}: ${r.stderr}`);
        const got = new Float32Array((await Deno.readFile(out)).buffer);
        const want = unpackSparse(matrix);
        assert.equal(got.length, want.length, `${mode} ${name}: length`);
        let diff = 0;
        for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) diff++;
        assert.equal(diff, 0, `${mode} ${name}: ${diff} of ${want.length} values differ`);
        const nonzeros = want.filter((x) => x !== 0).length;
        assert.match(r.stdout, new RegExp(`\\[${matrix.rows}, ${matrix.cols}\\], ${nonzeros} nonzeros`));
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sparse reader: a file that is not owlgpu's, an unknown weight, an unwritable --out and a truncated file give an error and exit 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "owlgpu-reader-" });
  try {
    const plain = join(dir, "plain.safetensors");
    const header = new TextEncoder().encode(
      JSON.stringify({ x: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }),
    );
    const bytes = new Uint8Array(8 + header.length + 4);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
    bytes.set(header, 8);
    await Deno.writeFile(plain, bytes);
    const r = await python([plain], { OWLGPU_NO_NUMPY: "1" });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: .*not an owlgpu sparse file/m);
    const sparse = join(dir, "s.safetensors");
    await writeSparseSafetensors(sparse, [WEIGHTS[0]]);
    const u = await python([sparse, "--dense", "nope"], { OWLGPU_NO_NUMPY: "1" });
    assert.equal(u.code, 1);
    assert.match(u.stderr, /^error: nope is not a sparse weight of /m);
    const w = await python([sparse, "--dense", WEIGHTS[0].name, "--out", join(dir, "no-such-dir", "w.f32")], {
      OWLGPU_NO_NUMPY: "1",
    });
    assert.equal(w.code, 1);
    assert.match(w.stderr, /^error: cannot write .*w\.f32: No such file or directory/m);
    // Truncated: a byte short of its last array, and cut inside the header.
    const whole = await Deno.readFile(sparse);
    await Deno.writeFile(sparse, whole.subarray(0, whole.length - 1));
    const t = await python([sparse, "--dense", WEIGHTS[0].name], { OWLGPU_NO_NUMPY: "1" });
    assert.equal(t.code, 1);
    assert.match(t.stderr, /^error: .*its arrays end at byte \d+: truncated/m);
    await Deno.writeFile(sparse, whole.subarray(0, 20));
    const h = await python([sparse], { OWLGPU_NO_NUMPY: "1" });
    assert.equal(h.code, 1);
    assert.match(h.stderr, /^error: .*header length \d+ is past the end of the 20-byte file: truncated/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
