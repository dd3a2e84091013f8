/**
 * File helpers for outputs: a file is written under a temporary name beside its target and
 * renamed into place only when complete, so a crash never leaves a half-written file.
 * @module
 */
import { dirname, resolve } from "node:path";
import { OutputError } from "../errors.ts";

function tmpName(path: string): string {
  return `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
}

/** Write `text` to `path` atomically (temp name + rename). */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  const tmp = tmpName(path);
  try {
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new OutputError(`cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
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
