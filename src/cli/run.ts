/**
 * Entry-point wrapper for every CLI: an OwlError prints its message (no stack) and exits 1;
 * anything else is a bug and prints its stack, exit 2. Ctrl-C (SIGINT) or SIGTERM removes the
 * temporary outputs in progress (half-written files, a prune job's weights file) and exits 130 or
 * 143, as a shell reports a process killed by that signal.
 * @module
 */
import { OwlError } from "../errors.ts";
import { removeTemporariesSync } from "../util/files.ts";

/** The signals that stop a CLI, with the exit status a shell gives a process they kill (128 + n). */
function stopSignals(): [Deno.Signal, number][] {
  // Windows delivers only SIGINT (and SIGBREAK) to Deno.
  return Deno.build.os === "windows" ? [["SIGINT", 130]] : [["SIGINT", 130], ["SIGTERM", 143]];
}

/** Lines printed when a CLI stops early (signal or error), e.g. where its progress was kept. */
const stopNotes = new Set<string>();

/** Print `line` if the CLI stops early, until the returned function is called. */
export function noteOnStop(line: string): () => void {
  stopNotes.add(line);
  return () => void stopNotes.delete(line);
}

function printStopNotes(): void {
  for (const line of stopNotes) console.error(line);
}

export async function runCli(main: (args: string[]) => Promise<void>): Promise<void> {
  const listeners = stopSignals().map(([signal, code]) => {
    const onSignal = () => {
      const removed = removeTemporariesSync();
      console.error(
        `\ninterrupted (${signal})` +
          (removed.length ? `; removed ${removed.length} unfinished output(s): ${removed.join(", ")}` : ""),
      );
      printStopNotes();
      Deno.exit(code);
    };
    Deno.addSignalListener(signal, onSignal);
    return [signal, onSignal] as const;
  });
  try {
    await main(Deno.args);
  } catch (e) {
    if (e instanceof OwlError) {
      console.error(`error: ${e.message}`);
      printStopNotes();
      Deno.exit(1);
    }
    console.error(e);
    printStopNotes();
    Deno.exit(2);
  } finally {
    for (const [signal, onSignal] of listeners) Deno.removeSignalListener(signal, onSignal);
  }
}
