/**
 * Entry-point wrapper for every CLI: an OwlError prints its message (no stack) and exits 1;
 * anything else is a bug and prints its stack, exit 2.
 * @module
 */
import { OwlError } from "../errors.ts";

export async function runCli(main: (args: string[]) => Promise<void>): Promise<void> {
  try {
    await main(Deno.args);
  } catch (e) {
    if (e instanceof OwlError) {
      console.error(`error: ${e.message}`);
      Deno.exit(1);
    }
    console.error(e);
    Deno.exit(2);
  }
}
