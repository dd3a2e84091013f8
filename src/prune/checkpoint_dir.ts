/**
 * `deno task prune --checkpoint DIR` (Deno): the pruned linears and the walk's state after every
 * block, kept on disk so that a job stopped by Ctrl-C, a crash or a lost machine resumes where it
 * was when run again with the same flags. Two files:
 * - `weights.bin`: a kept {@linkcode FileWeightStore} (zero-skipped f32 records, appended per linear);
 * - `checkpoint.json`: `{"walk": PruneCheckpoint, "store": StoreSnapshot}`, replaced atomically after
 *   the weights file is synced, so it never names bytes that are not on disk. Records appended after
 *   it (a block cut short) are cut off on resume.
 * @module
 */
import { join } from "node:path";
import { ArgumentError, ModelFormatError, OutputError } from "../errors.ts";
import { writeTextAtomic } from "../util/files.ts";
import { FileWeightStore, type StoreSnapshot } from "./file_store.ts";
import type { PruneCheckpoint } from "./resume.ts";

/** The walk's state, in a checkpoint directory. */
export const CHECKPOINT_FILE = "checkpoint.json";
/** The pruned linears, in a checkpoint directory. */
export const CHECKPOINT_WEIGHTS = "weights.bin";

/** What checkpoint.json holds. */
interface CheckpointFile {
  walk: PruneCheckpoint;
  store: StoreSnapshot;
}

/**
 * A checkpoint directory, opened: the store to prune into, and the state to resume from when the
 * directory held one.
 */
export class CheckpointDir {
  private constructor(
    readonly dir: string,
    readonly store: FileWeightStore,
    readonly resume: PruneCheckpoint | undefined,
  ) {}

  /**
   * Open `dir` (created when missing). It may hold only a checkpoint's files: ArgumentError for
   * anything else, or for a checkpoint.json that does not parse.
   */
  static async open(dir: string): Promise<CheckpointDir> {
    try {
      await Deno.mkdir(dir, { recursive: true });
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) {
        throw new ArgumentError(`--checkpoint ${dir} is a file; give a directory`, { cause: e });
      }
      throw new OutputError(`--checkpoint ${dir}: cannot create the directory: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(dir)) names.push(e.name);
    } catch (e) {
      throw new OutputError(`--checkpoint ${dir}: cannot read it: ${(e as Error).message}`, { cause: e });
    }
    // A checkpoint.json being replaced when the process was killed (SIGKILL: no handler ran).
    const stale = names.filter((n) => n.startsWith(`${CHECKPOINT_FILE}.tmp-`));
    for (const n of stale) await Deno.remove(join(dir, n)).catch(() => {});
    const others = names.filter((n) =>
      n !== CHECKPOINT_FILE && n !== CHECKPOINT_WEIGHTS && !stale.includes(n)
    ).sort();
    if (others.length) {
      throw new ArgumentError(
        `--checkpoint ${dir} holds ${others.length} file(s) that are not a checkpoint's (${others[0]}); ` +
          "give a new or empty directory, or one an interrupted prune left",
      );
    }
    let saved: CheckpointFile | undefined;
    if (names.includes(CHECKPOINT_FILE)) {
      const path = join(dir, CHECKPOINT_FILE);
      try {
        saved = JSON.parse(await Deno.readTextFile(path));
      } catch (e) {
        throw new ArgumentError(
          `--checkpoint ${dir}: ${CHECKPOINT_FILE} cannot be read (${(e as Error).message}); ` +
            "remove the directory to start the job over",
          { cause: e },
        );
      }
      if (typeof saved !== "object" || saved === null || typeof saved.store !== "object") {
        throw new ArgumentError(
          `--checkpoint ${dir}: ${CHECKPOINT_FILE} is not a checkpoint; remove the directory to start over`,
        );
      }
    }
    try {
      const store = await FileWeightStore.openKept(join(dir, CHECKPOINT_WEIGHTS), saved?.store);
      return new CheckpointDir(dir, store, saved?.walk);
    } catch (e) {
      if (!(e instanceof ModelFormatError)) throw e;
      throw new ArgumentError(
        `--checkpoint ${dir}: ${e.message}; remove the directory to start the job over`,
        {
          cause: e,
        },
      );
    }
  }

  /** Make `walk` the state to resume from: the weights file is synced first. */
  async save(walk: PruneCheckpoint): Promise<void> {
    await this.store.flush();
    const file: CheckpointFile = { walk, store: this.store.snapshot() };
    await writeTextAtomic(join(this.dir, CHECKPOINT_FILE), JSON.stringify(file));
  }

  /** Close the store; the files stay, to resume from. */
  close(): void {
    this.store.close();
  }

  /** The job is done: delete the checkpoint's files, and the directory when that leaves it empty. */
  async remove(): Promise<void> {
    this.close();
    for (const name of [CHECKPOINT_FILE, CHECKPOINT_WEIGHTS]) {
      await Deno.remove(join(this.dir, name)).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
    }
    await Deno.remove(this.dir).catch(() => {}); // not empty, or already gone: leave it
  }
}
