/**
 * The progress line of the long-running commands (wpc train, wpc reproduce), on stderr.
 */
/** A one-line progress display on stderr: redrawn in place on a terminal, a line every 10% otherwise. */
export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private lastDraw = 0;
  private lastDecile = -1;
  private readonly started = performance.now();

  constructor(
    private readonly total: number,
    private readonly quiet: boolean,
    private readonly unit = 'steps',
    private readonly showLoss = true,
  ) {}

  update(done: number, loss: number | undefined, note = ''): void {
    if (this.quiet) return;
    const now = performance.now();
    const decile = Math.floor((10 * done) / this.total);
    if (this.tty ? now - this.lastDraw < 100 && done < this.total : decile === this.lastDecile) return;
    this.lastDraw = now;
    this.lastDecile = decile;
    const seconds = (now - this.started) / 1000;
    const rate = done / Math.max(seconds, 1e-9);
    const eta = rate > 0 ? (this.total - done) / rate : 0;
    const width = 24;
    const filled = Math.round((width * done) / this.total);
    const bar = `${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? (done < this.total ? '>' : '=') : ''}${' '.repeat(width - filled)}`;
    const line =
      `[${bar}] ${String(done).padStart(String(this.total).length)}/${this.total} ` +
      `${rate.toFixed(1)} ${this.unit}/s  ETA ${formatTime(eta)}${this.showLoss ? `  loss ${loss === undefined ? '-' : loss.toFixed(4)}` : ''}${note ? `  ${note}` : ''}`;
    if (this.tty) process.stderr.write(`\r${line}\x1b[K`);
    else process.stderr.write(`${line}\n`);
  }

  log(message: string): void {
    if (this.quiet) return;
    if (this.tty) process.stderr.write(`\r\x1b[K${message}\n`);
    else process.stderr.write(`${message}\n`);
    this.lastDraw = 0;
  }

  end(): void {
    if (!this.quiet && this.tty) process.stderr.write('\n');
  }
}

function formatTime(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  return m >= 60
    ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`
    : `${m}:${String(s % 60).padStart(2, '0')}`;
}
