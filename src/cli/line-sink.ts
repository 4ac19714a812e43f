// Where a command's result lines go (srk logprobs): stdout, or a file that appears
// whole under its name once everything succeeded (a temporary file, fsync, rename), never half written.
import fs from 'node:fs';
import path from 'node:path';

/** Where result lines go: stdout, or a temp file renamed over --out once everything succeeded. */
export class LineSink {
  private fd: number | null = null;
  private readonly tmp: string | null = null;

  /** Ctrl-C or SIGTERM while the file is written: its temporary file is removed before the exit (130 / 143). */
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.abort();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };

  constructor(private readonly out: string | undefined) {
    if (out) {
      fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
      this.tmp = `${out}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
      this.fd = fs.openSync(this.tmp, 'w');
      process.once('SIGINT', this.onSignal);
      process.once('SIGTERM', this.onSignal);
    }
  }

  private release(): void {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
  }

  async write(text: string): Promise<void> {
    if (this.fd !== null) {
      fs.writeSync(this.fd, text);
    } else if (!process.stdout.write(text)) {
      await new Promise<void>((resolve) => process.stdout.once('drain', () => resolve()));
    }
  }

  /** Makes the file appear under its name (fsync, rename). */
  commit(): void {
    if (this.fd === null || !this.tmp || !this.out) return;
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = null;
    fs.renameSync(this.tmp, this.out);
    this.release();
  }

  /** Drops a partly written file. */
  abort(): void {
    if (this.fd !== null) { fs.closeSync(this.fd); this.fd = null; }
    if (this.tmp) fs.rmSync(this.tmp, { force: true });
    this.release();
  }
}
