/** A one-line progress bar on stderr (only when stderr is a terminal, or when forced). */
export class Progress {
  private done = 0;
  private readonly enabled: boolean;
  private readonly started = Date.now();

  constructor(
    private readonly total: number,
    force = false,
  ) {
    this.enabled = force || process.stderr.isTTY === true;
  }

  tick(label: string): void {
    this.done = Math.min(this.total, this.done + 1);
    this.render(label);
  }

  note(label: string): void {
    this.render(label);
  }

  private render(label: string): void {
    if (!this.enabled) return;
    const width = 28;
    const filled = Math.round((this.done / Math.max(1, this.total)) * width);
    const secs = Math.round((Date.now() - this.started) / 1000);
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.done}/${this.total} ${secs}s ${label}`;
    process.stderr.write(`\r${line.slice(0, 110).padEnd(110)}`);
  }

  end(): void {
    if (this.enabled) process.stderr.write('\n');
  }
}
