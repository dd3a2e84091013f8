/**
 * `deno task build`: browser bundles of owlgpu with esbuild (npm:esbuild, from deno.json).
 *
 * - `dist/owlgpu.js`: mod.ts without the functions that need Deno's file APIs
 *   ({@linkcode DENO_ONLY}); everything else (runtime, kernels, launchers, byte-level model
 *   readers, tokenizers from bytes, forward pass, evaluation, pruning) works in a browser with
 *   WebGPU. The few `node:` built-ins the sources import (`node:path`, `node:url`) are replaced by
 *   small POSIX shims, so the bundle imports nothing; npm packages (`@huggingface/tokenizers`)
 *   are bundled from node_modules.
 * - `dist/kernels.js`: only the GPU runtime, the WGSL generators and their launchers and the
 *   error classes: no tokenizer library, no model code, for projects that want the kernels.
 *
 * Both are ES modules for browsers (ES2022), minified with names kept (error classes report
 * their own names), with source maps. Flags: `deno task build --help` (`--outdir DIR`, default dist/;
 * `--no-minify`).
 * @module
 */
import * as esbuild from "esbuild";
import { parseFlags } from "../src/cli/args.ts";
import { runCli } from "../src/cli/run.ts";

const ROOT = new URL("../", import.meta.url);
const ROOT_DIR = decodeURIComponent(ROOT.pathname);

/**
 * Value exports of mod.ts left out of `dist/owlgpu.js` because they read or write files with
 * Deno's APIs. In a browser, fetch the bytes and use the byte-level APIs instead (module doc).
 */
export const DENO_ONLY: readonly string[] = [
  "FileByteSource",
  "FileWeightStore",
  "exportHuggingFace",
  "hasHfWeights",
  "loadCorpusText",
  "loadEmbeddedFiles",
  "loadSparseModel",
  "openHuggingFace",
  "openModelWeights",
  "openSparseModelDir",
  "openTokenizer",
  "openWeights",
  "saveSparseModel",
  "tokenizeCorpus",
  "writeSafetensors",
  "writeSparseSafetensors",
];

/** Source files whose exports make up `dist/kernels.js` (relative to the repository root). */
async function kernelFiles(): Promise<string[]> {
  const files: string[] = [];
  for (const dir of ["kernels", "src/ops"]) {
    for await (const e of Deno.readDir(new URL(dir, ROOT))) {
      // src/ops/check.ts: the launchers' argument checks, internal (mod.ts does not export them).
      if (e.isFile && e.name.endsWith(".ts") && `${dir}/${e.name}` !== "src/ops/check.ts") {
        files.push(`${dir}/${e.name}`);
      }
    }
  }
  files.sort();
  return ["src/errors.ts", "src/gpu/device.ts", "src/gpu/matrix.ts", ...files];
}

/**
 * Browser stand-ins for the `node:` built-ins the sources import (POSIX paths, "/" as cwd). Every
 * name a bundled source imports must be here, or the build fails (test/build_test.ts checks them
 * against node's own).
 */
export const SHIMS: Record<string, string> = {
  "node:path": `
function normalize(p) {
  const abs = p.startsWith("/"), out = [];
  for (const s of p.split("/")) {
    if (s === "" || s === ".") continue;
    if (s === "..") { if (out.length && out[out.length - 1] !== "..") out.pop(); else if (!abs) out.push(s); }
    else out.push(s);
  }
  const r = (abs ? "/" : "") + out.join("/") || (abs ? "/" : ".");
  return p.endsWith("/") && !r.endsWith("/") ? r + "/" : r; // node keeps a trailing slash
}
export function join(...parts) { return normalize(parts.filter((p) => p !== "").join("/")); }
export function resolve(...parts) {
  let r = "/";
  for (const p of parts) r = p.startsWith("/") ? p : r + "/" + p;
  r = normalize(r);
  return r.length > 1 && r.endsWith("/") ? r.slice(0, -1) : r;
}
export function dirname(p) {
  if (/^\\/+$/.test(p)) return "/";
  const s = p.replace(/\\/+$/, "");
  const i = s.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : s.slice(0, i);
}
export function basename(p, ext) {
  const b = p.replace(/\\/+$/, "").split("/").pop() ?? "";
  return ext && b.endsWith(ext) && b !== ext ? b.slice(0, -ext.length) : b;
}
export function isAbsolute(p) { return p.startsWith("/"); }
export function relative(from, to) {
  const a = resolve(from).split("/").filter(Boolean), b = resolve(to).split("/").filter(Boolean);
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return [...a.slice(i).map(() => ".."), ...b.slice(i)].join("/");
}
export function extname(p) {
  const b = basename(p), i = b.lastIndexOf(".");
  return i <= 0 ? "" : b.slice(i);
}
export const sep = "/";
export default { join, resolve, dirname, basename, isAbsolute, relative, extname, sep };
`,
  "node:url": `
export function fileURLToPath(u) {
  const url = typeof u === "string" ? new URL(u) : u;
  if (url.protocol !== "file:") throw new TypeError("The URL must be of scheme file: " + url.href);
  return decodeURIComponent(url.pathname);
}
export function pathToFileURL(p) { return new URL("file://" + encodeURI(p)); }
export default { fileURLToPath, pathToFileURL };
`,
};

/**
 * Resolves `node:` imports to {@linkcode SHIMS}; any other `node:` import fails the build. Also
 * used by `deno task serve` to bundle the demo page (src/cli/serve_main.ts).
 */
export const nodeShims: esbuild.Plugin = {
  name: "owlgpu-node-shims",
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => {
      if (args.path in SHIMS) return { path: args.path, namespace: "owlgpu-shim" };
      return { errors: [{ text: `${args.path} has no browser shim (imported by ${args.importer})` }] };
    });
    b.onLoad(
      { filter: /.*/, namespace: "owlgpu-shim" },
      (args) => ({ contents: SHIMS[args.path], loader: "js" }),
    );
  },
};

export interface BuildOptions {
  /** Output directory (default: dist/ in the repository). */
  outdir?: string;
  /** Minify (default true). */
  minify?: boolean;
}

export interface BundleInfo {
  /** Output path. */
  path: string;
  /** Bytes of the .js file. */
  bytes: number;
  /** Bytes after gzip (what a web server typically sends). */
  gzipBytes: number;
  /** Names the bundle exports. */
  exports: string[];
  /** Modules the bundle still imports at load time (empty: it is self-contained). */
  imports: string[];
}

async function gzipSize(bytes: Uint8Array): Promise<number> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return (await new Response(stream).arrayBuffer()).byteLength;
}

async function bundle(name: string, contents: string, outdir: string, minify: boolean): Promise<BundleInfo> {
  const outfile = `${outdir}/${name}`;
  const result = await esbuild.build({
    stdin: {
      contents,
      resolveDir: ROOT_DIR,
      sourcefile: `${name.replace(/\.js$/, "")}-entry.ts`,
      loader: "ts",
    },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    outfile,
    sourcemap: true,
    minify,
    keepNames: true,
    metafile: true,
    logLevel: "warning",
    plugins: [nodeShims],
  });
  const meta = result.metafile!.outputs;
  const out = Object.entries(meta).find(([p]) => p.endsWith(".js"))!;
  const bytes = await Deno.readFile(outfile);
  return {
    path: outfile,
    bytes: bytes.byteLength,
    gzipBytes: await gzipSize(bytes),
    exports: out[1].exports.sort(),
    imports: out[1].imports.map((i) => i.path),
  };
}

/** Build both bundles; returns their paths, sizes and export lists. */
export async function build(opts: BuildOptions = {}): Promise<BundleInfo[]> {
  const outdir = opts.outdir ?? `${ROOT_DIR}dist`;
  const minify = opts.minify ?? true;
  await Deno.mkdir(outdir, { recursive: true });
  const names = Object.keys(await import("../mod.ts")).filter((n) => !DENO_ONLY.includes(n)).sort();
  const browserEntry = `export { ${names.join(", ")} } from "./mod.ts";\n`;
  const kernelsEntry = (await kernelFiles()).map((f) => `export * from "./${f}";`).join("\n") + "\n";
  try {
    return [
      await bundle("owlgpu.js", browserEntry, outdir, minify),
      await bundle("kernels.js", kernelsEntry, outdir, minify),
    ];
  } finally {
    await esbuild.stop();
  }
}

function kib(n: number): string {
  return `${(n / 1024).toFixed(1)} KiB`;
}

const HELP = `Browser bundles of owlgpu with esbuild: dist/owlgpu.js (mod.ts without its Deno-only file
APIs) and dist/kernels.js (the GPU runtime and kernels only), ES modules with source maps.

Usage: deno task build [flags]

  --outdir DIR        where to write them (default dist/)
  --no-minify         readable output
  -h, --help          this text`;

async function main(args: string[]): Promise<void> {
  const values = parseFlags(args, {
    outdir: { type: "string" },
    "no-minify": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const t0 = performance.now();
  const infos = await build({ outdir: values.outdir, minify: !values["no-minify"] });
  for (const b of infos) {
    const rel = b.path.startsWith(ROOT_DIR) ? b.path.slice(ROOT_DIR.length) : b.path;
    console.log(
      `${rel.padEnd(18)} ${kib(b.bytes).padStart(10)}  (gzip ${
        kib(b.gzipBytes)
      }), ${b.exports.length} exports, + .map`,
    );
  }
  console.log(`built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

if (import.meta.main) await runCli(main);
