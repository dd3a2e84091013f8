/**
 * A one-line progress bar with rate and ETA on stderr (redrawn in place on a terminal, a line
 * per 10% otherwise, so CI logs stay short).
 * @module
 */

export class Progress {
  private readonly start = performance.now();
  private lastDecile = -1;
  private readonly tty: boolean;

  constructor(private readonly label: string, private readonly total: number, private readonly unit = "") {
    this.tty = Deno.stderr.isTerminal();
  }

  update(done: number): void {
    const frac = this.total > 0 ? done / this.total : 1;
    const secs = (performance.now() - this.start) / 1000;
    const eta = done > 0 ? (secs / done) * (this.total - done) : NaN;
    const width = 24;
    const bar = "#".repeat(Math.round(frac * width)).padEnd(width, ".");
    const line = `${this.label} [${bar}] ${done}/${this.total}${this.unit} ${secs.toFixed(1)}s` +
      (done < this.total && isFinite(eta) ? ` eta ${eta.toFixed(0)}s` : "");
    const enc = new TextEncoder();
    if (this.tty) {
      Deno.stderr.writeSync(enc.encode(`\r${line}\x1b[K${done >= this.total ? "\n" : ""}`));
    } else {
      const decile = Math.floor(frac * 10);
      if (decile !== this.lastDecile) {
        this.lastDecile = decile;
        Deno.stderr.writeSync(enc.encode(line + "\n"));
      }
    }
  }
}
