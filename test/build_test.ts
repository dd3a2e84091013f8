/**
 * The browser bundles (scripts/build.ts): built into a temporary directory, they must be
 * self-contained ES modules (no `node:` or npm imports left, no `Deno.` use), export what mod.ts
 * exports (owlgpu.js: all but the Deno-only file functions; kernels.js: the runtime and kernels),
 * and load and work in a process where the `Deno` global has been deleted before the import.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { build, type BundleInfo, DENO_ONLY, SHIMS } from "../scripts/build.ts";
import { embeddedDataPath } from "../src/model/embedded.ts";

/** A bundle still touches Deno's API when it says `Deno.` (`globalThis.Deno?.env` is a guarded probe). */
const DENO_USE = /\bDeno\.(?!\?)/;

async function withBundles(fn: (owlgpu: BundleInfo, kernels: BundleInfo, dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "owlgpu-build-" });
  try {
    const [owlgpu, kernels] = await build({ outdir: dir });
    await fn(owlgpu, kernels, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A script that hides Deno, then imports both bundles and exercises them as a browser would. */
const PROBE = `
const [owlgpuUrl, kernelsUrl, dataPath] = Deno.args;
const data = await Deno.readFile(dataPath);
delete globalThis.Deno;
const out = { denoGone: typeof globalThis.Deno === "undefined" };
const o = await import(owlgpuUrl);
const k = await import(kernelsUrl);
const files = await o.carveEmbedded(data);
const tok = o.Llama2cTokenizer.fromBytes(files.tokenizer);
out.ids = tok.encode("Hello world!");
const src = await o.openLlama2c(new o.MemoryByteSource(files.checkpoint, "stories15M"));
out.nLayers = src.config.nLayers;
out.windows = o.evalWindows(Int32Array.from({ length: 10 }, (_, i) => i), 4).length;
out.wgsl = k.linearWgsl({ variant: "tile", wDtype: "f32", vec: 4, bias: false, tm: 4, tn: 4, workgroupSize: 64 }).includes("@compute");
try { throw new k.ArgumentError("x"); } catch (e) { out.errorName = e.name; }
if (globalThis.navigator?.gpu) {
  let gpu;
  try { gpu = await k.Gpu.create(); } catch { /* no adapter */ }
  if (gpu) {
    const w = k.uploadMatrix(gpu, new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1]), 3, 4, "w");
    const x = gpu.upload(new Float32Array([1, 2, 3, 4]), "x");
    const y = gpu.buffer(12, "y");
    k.linear(gpu, x, w, y, 1);
    out.gemv = Array.from(await gpu.readF32(y));
    k.releaseMatrix(gpu, w);
    gpu.release(x, y);
    gpu.destroy();
  }
}
console.log(JSON.stringify(out));
`;

Deno.test("build: owlgpu.js and kernels.js are self-contained browser ES modules", async () => {
  await withBundles(async (owlgpu, kernels) => {
    const modNames = Object.keys(await import("../mod.ts"));
    // Every value export of mod.ts is in owlgpu.js, except the Deno-only file functions.
    assert.deepEqual(owlgpu.exports, modNames.filter((n) => !DENO_ONLY.includes(n)).sort());
    for (const n of DENO_ONLY) {
      assert(modNames.includes(n), `DENO_ONLY names ${n}, which mod.ts no longer exports`);
    }
    for (
      const n of ["Gpu", "uploadMatrix", "linear", "linearWgsl", "wandaRowMask", "outlierCount", "OwlError"]
    ) {
      assert(kernels.exports.includes(n), `kernels.js lacks ${n}`);
    }
    for (const n of ["prune", "HfTokenizer", "GpuModel"]) {
      assert(!kernels.exports.includes(n), `kernels.js has ${n}`);
    }
    assert(kernels.bytes < owlgpu.bytes, "kernels.js should be the leaner bundle");
    for (const b of [owlgpu, kernels]) {
      assert.deepEqual(b.imports, [], `${b.path} still imports modules`);
      const text = await Deno.readTextFile(b.path);
      assert(!/\bnode:[a-z]/.test(text), `${b.path} mentions a node: module`);
      assert(!DENO_USE.test(text), `${b.path} uses Deno.${text.match(/\bDeno\.(\w+)/)?.[1]}`);
      assert(!/\brequire\(/.test(text), `${b.path} calls require()`);
      assert(text.trimEnd().endsWith(`//# sourceMappingURL=${b.path.split("/").pop()}.map`));
      assert((await Deno.stat(b.path + ".map")).size > 0);
    }
  });
});

/** A script that hides WebGPU as a browser without it would (no navigator.gpu, no GPU* globals). */
const NO_WEBGPU_PROBE = `
const [owlgpuUrl, kernelsUrl] = Deno.args;
delete globalThis.Deno;
Object.defineProperty(navigator, "gpu", { value: undefined, configurable: true });
for (const name of Object.getOwnPropertyNames(globalThis)) if (/^GPU/.test(name)) delete globalThis[name];
const out = { gpuGlobals: Object.getOwnPropertyNames(globalThis).filter((n) => /^GPU/.test(n)).length };
const o = await import(owlgpuUrl);
const k = await import(kernelsUrl);
for (const m of [o, k]) {
  try { await m.Gpu.create(); out.created = true; } catch (e) { (out.errors ??= []).push(e.name); }
}
console.log(JSON.stringify(out));
`;

Deno.test("build: the bundles import without WebGPU, and Gpu.create then says why", async () => {
  await withBundles(async (owlgpu, kernels, dir) => {
    const probe = `${dir}/no-webgpu.mjs`;
    await Deno.writeTextFile(probe, NO_WEBGPU_PROBE);
    const url = (p: string) => new URL(`file://${p}`).href;
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", probe, url(owlgpu.path), url(kernels.path)],
      env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const out = JSON.parse(new TextDecoder().decode(stdout).trim().split("\n").pop()!);
    assert.deepEqual(out, { gpuGlobals: 0, errors: ["GpuUnavailableError", "GpuUnavailableError"] });
  });
});

Deno.test("build: the bundles load and work without the Deno global", async () => {
  await withBundles(async (owlgpu, kernels, dir) => {
    const probe = `${dir}/probe.mjs`;
    await Deno.writeTextFile(probe, PROBE);
    const url = (p: string) => new URL(`file://${p}`).href;
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", probe, url(owlgpu.path), url(kernels.path), embeddedDataPath()],
      env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    }).output();
    const err = new TextDecoder().decode(stderr);
    assert.deepEqual(code, 0, err);
    const out = JSON.parse(new TextDecoder().decode(stdout).trim().split("\n").pop()!);
    assert.deepEqual(out.denoGone, true);
    assert.deepEqual(out.ids, [15043, 3186, 29991]);
    assert.deepEqual(out.nLayers, 6);
    assert.deepEqual(out.windows, 2);
    assert.deepEqual(out.wgsl, true);
    assert.deepEqual(out.errorName, "ArgumentError");
    if (out.gemv) assert.deepEqual(out.gemv, [1, 2, 10]);
  });
});

Deno.test("build: the node:path shim agrees with node:path for what the sources import", async () => {
  const shim = await import(`data:text/javascript,${encodeURIComponent(SHIMS["node:path"])}`);
  // Every name a bundled source imports from node:path (src/model/hf.ts: isAbsolute, relative).
  for (const n of ["basename", "dirname", "extname", "isAbsolute", "join", "relative", "resolve", "sep"]) {
    assert(n in shim, `the node:path shim lacks ${n}`);
  }
  const paths = ["/a/b/c", "/a/b/../c/", "a/b", "./a", "../a/b", "/", ".", "a.tar.gz", "/x/.hidden", "/x/y."];
  for (const p of paths) {
    for (const f of ["basename", "dirname", "extname", "isAbsolute"] as const) {
      assert.deepEqual(shim[f](p), path[f](p), `${f}(${JSON.stringify(p)})`);
    }
    for (const q of paths) {
      assert.deepEqual(shim.join(p, q), path.join(p, q), `join(${p}, ${q})`);
      // The shim's cwd is "/": compare relative() and resolve() on absolute paths.
      const [ap, aq] = [path.resolve("/", p), path.resolve("/", q)];
      assert.deepEqual(shim.relative(ap, aq), path.relative(ap, aq), `relative(${ap}, ${aq})`);
      assert.deepEqual(shim.resolve(ap, q), path.resolve(ap, q), `resolve(${ap}, ${q})`);
    }
  }
});
