/**
 * File helpers for outputs: a file is written under a temporary name beside its target and
 * renamed into place only when complete, so a crash never leaves a half-written file.
 * @module
 */
import { basename, dirname, resolve } from "node:path";
import { ArgumentError, OutputError } from "../errors.ts";

/** A random suffix for temporary names beside a target: `.tmp-1a2b3c4d`. */
export function tmpSuffix(): string {
  return `.tmp-${crypto.randomUUID().slice(0, 8)}`;
}

function tmpName(path: string): string {
  return path + tmpSuffix();
}

/** Temporary outputs being written now (files or directories), for {@linkcode removeTemporariesSync}. */
const temporaries = new Set<string>();

/**
 * Note `path` as a temporary output in progress; call the returned function once it is renamed or
 * removed. The writers remove their temporaries themselves on errors; this list is for what they
 * cannot see: the CLIs remove it on Ctrl-C or SIGTERM (src/cli/run.ts), which would otherwise leave
 * a half-written output (or a prune job's weights file, as large as the model) behind.
 */
export function trackTemporary(path: string): () => void {
  temporaries.add(path);
  return () => void temporaries.delete(path);
}

/**
 * Remove every temporary output in progress (synchronously: a signal handler is about to exit).
 * Returns the paths removed.
 */
export function removeTemporariesSync(): string[] {
  const removed: string[] = [];
  for (const path of temporaries) {
    try {
      Deno.removeSync(path, { recursive: true });
      removed.push(path);
    } catch {
      // already gone, or not ours to remove any more
    }
  }
  temporaries.clear();
  return removed;
}

/** What is at `path` (Deno.stat); undefined when nothing is there. */
export async function pathInfo(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** Whether `path` is a directory; undefined when nothing is there. */
export async function isDirectory(path: string): Promise<boolean | undefined> {
  return (await pathInfo(path))?.isDirectory;
}

/**
 * Refuse a file name for an output directory that would escape it or clobber one of the files
 * the writer itself puts there (`reserved`); `what` names the writer in the message.
 */
export function checkPlainFileName(name: string, reserved: readonly string[], what: string): void {
  if (
    name !== basename(name) || name === "." || name === ".." || name.includes("\\") || reserved.includes(name)
  ) {
    throw new ArgumentError(
      `${what}: extra file name ${JSON.stringify(name)} is not a plain, free file name`,
    );
  }
}

/** Move the finished `tmp` to `outDir`, replacing an existing directory only now. */
async function commitDirectory(tmp: string, outDir: string): Promise<void> {
  if (await isDirectory(outDir) === undefined) {
    await Deno.rename(tmp, outDir);
    return;
  }
  const old = outDir + ".old" + tmpSuffix();
  await Deno.rename(outDir, old);
  try {
    await Deno.rename(tmp, outDir);
  } catch (e) {
    await Deno.rename(old, outDir); // put the previous output back
    throw e;
  }
  await Deno.remove(old, { recursive: true });
}

/**
 * Build a directory atomically: `fill` writes into a fresh temporary directory beside `outDir`,
 * which is renamed into place only when `fill` has finished (an existing `outDir` is replaced
 * then, and put back if that rename fails). On any failure the temporary directory is removed
 * and the error rethrown as it was; a parent that cannot take the directory is an OutputError.
 */
export async function writeDirectoryAtomic<T>(outDir: string, fill: (tmp: string) => Promise<T>): Promise<T> {
  outDir = resolve(outDir);
  if (await isDirectory(outDir) === false) {
    throw new OutputError(
      `${outDir} exists and is not a directory; choose another output directory or remove it`,
    );
  }
  const tmp = outDir + tmpSuffix();
  try {
    await Deno.mkdir(tmp);
  } catch (e) {
    throw new OutputError(
      `cannot create the output directory in ${dirname(outDir)}: ${(e as Error).message}; ` +
        `the parent directory must exist and be writable`,
      { cause: e },
    );
  }
  const untrack = trackTemporary(tmp);
  try {
    const result = await fill(tmp);
    await commitDirectory(tmp, outDir);
    return result;
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  } finally {
    untrack();
  }
}

/** The OutputError of a failed write to `path` (the final path, not the temporary one). */
export function cannotWrite(path: string, e: unknown): OutputError {
  return new OutputError(
    `cannot write ${path}: ${
      (e as Error).message
    }; check that its directory exists, is writable and has space`,
    { cause: e },
  );
}

/** A file being written; every filesystem failure becomes an OutputError naming `path`. */
export class FileSink {
  constructor(private readonly file: Deno.FsFile, private readonly path: string) {}

  /** Write all of `bytes` (a file write may take fewer at a time). */
  async write(bytes: Uint8Array): Promise<void> {
    try {
      for (let done = 0; done < bytes.byteLength;) done += await this.file.write(bytes.subarray(done));
    } catch (e) {
      throw cannotWrite(this.path, e);
    }
  }
}

/**
 * Write a file atomically: `fill` writes into `path + ".tmp-<random>"` (registered with
 * {@linkcode trackTemporary} while it is written), which is renamed to `path` when `fill` is done. On
 * any failure the temporary file is removed; filesystem failures are OutputErrors naming `path`.
 */
export async function writeFileAtomic(path: string, fill: (sink: FileSink) => Promise<void>): Promise<void> {
  const tmp = tmpName(path);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true });
  } catch (e) {
    throw cannotWrite(path, e);
  }
  const untrack = trackTemporary(tmp);
  try {
    try {
      await fill(new FileSink(file, path));
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path).catch((e) => {
      throw cannotWrite(path, e);
    });
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  } finally {
    untrack();
  }
}

/** Write `text` to `path` atomically (temp name + rename). */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  await writeFileAtomic(path, (sink) => sink.write(new TextEncoder().encode(text)));
}

/**
 * Fail early (before hours of work) when `path`'s parent directory cannot take a new entry:
 * creates and removes a probe directory there.
 */
export async function checkWritableParent(path: string, what: string): Promise<void> {
  const parent = dirname(resolve(path));
  const probe = tmpName(resolve(path));
  const info = await Deno.stat(parent).catch(() => undefined);
  if (!info) throw new OutputError(`cannot write the ${what} ${path}: directory ${parent} does not exist`);
  if (!info.isDirectory) {
    throw new OutputError(`cannot write the ${what} ${path}: ${parent} is not a directory`);
  }
  try {
    await Deno.mkdir(probe);
  } catch (e) {
    throw new OutputError(
      `cannot write the ${what} ${path}: ${
        (e as Error).message
      }; its parent directory ${parent} must exist and be writable`,
      { cause: e },
    );
  }
  await Deno.remove(probe).catch(() => {});
  try {
    const info = await Deno.stat(path);
    if (what.includes("directory") ? !info.isDirectory : !info.isFile) {
      throw new OutputError(
        `${path} exists and is not a ${what.includes("directory") ? "directory" : "file"}`,
      );
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}
