/**
 * Flag helpers shared by the CLIs: node's parseArgs errors become one-line ArgumentErrors, and
 * numeric flags are checked with messages that name the flag.
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ArgumentError, OutputError } from "../errors.ts";
import { MODEL_SPEC_FORMS } from "../model/open.ts";
import { SPARSE_MODEL_FILE } from "../sparse/model.ts";

/** What every CLI's --model takes (openModelWeights): openWeights' forms and sparse model directories. */
export const CLI_MODEL_FORMS: string =
  `${MODEL_SPEC_FORMS}; also a sparse model directory (config.json + ${SPARSE_MODEL_FILE})`;

/** `parseArgs` (strict, no positionals) with its errors as one-line ArgumentErrors. */
export function parseFlags<O extends NonNullable<ParseArgsConfig["options"]>>(
  args: string[],
  options: O,
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    // node's messages may span lines and end in a period: make them one clause.
    const why = (e as Error).message.replace(/\s*\n\s*/g, " ").replace(/\.$/, "");
    throw new ArgumentError(`${why}; see --help`);
  }
}

/** A finite number flag, or `fallback` when absent. */
export function numberFlag(flag: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const x = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(x)) {
    throw new ArgumentError(`--${flag} must be a number, got ${JSON.stringify(raw)}`);
  }
  return x;
}

/** A decimal integer flag >= min, or `fallback` when absent. */
export function intFlag(flag: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  const v = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(v) || v < min) {
    throw new ArgumentError(`--${flag} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return v;
}

/**
 * Refuse an existing output directory that holds files but no config.json: `--out` is replaced as a
 * whole when the new model is complete, so `--out .` or `--out ~` would delete whatever was there.
 * A new or empty directory, or a model directory (an earlier output), may be replaced.
 */
export async function checkReplaceableDir(dir: string, flag: string): Promise<void> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) names.push(e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return;
    throw new OutputError(`cannot read the output directory ${dir}: ${(e as Error).message}`, { cause: e });
  }
  if (names.length > 0 && !names.includes("config.json")) {
    throw new OutputError(
      `${flag} ${dir} is a directory with other files in it (no config.json: not a model directory); it ` +
        `would be replaced as a whole, so choose a new or empty directory, or remove it first`,
    );
  }
}

/**
 * `text` wrapped at word boundaries to lines of at most `width` characters, every line after the
 * first indented by `indent` spaces: a flag's description in a --help column.
 */
export function wrapHelp(text: string, indent: number, width = 108): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    const room = width - indent;
    if (line && line.length + 1 + word.length > room) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.join(`\n${" ".repeat(indent)}`);
}
