// srk generate --out: the lines go to OUT.partial as they are made, beside OUT.partial.json (the
// settings that made them), and OUT.partial becomes OUT (fsync, rename) once every row is done. A run
// that stops before (Ctrl-C, SIGTERM, a bad row, a full disk) keeps the lines written, and the same
// command takes up after the last whole one: a prompt's completions depend only on the settings, the
// prompt and its row's place in the file (generate.ts), so the rows left come out as they would have.
// The settings must be the same (else it is refused, naming what differs), and each row already done
// must still have the prompt it was made from (checked as the data is read again).
import fs from 'node:fs';
import path from 'node:path';
import { userError } from '../errors.js';

/** A line already written: its row's line in the data and its prompt. */
export interface DoneRow { line: number; prompt: string }

export class ResumableOutput {
  private fd: number | null;

  private constructor(readonly out: string, readonly partial: string, private readonly settingsFile: string, readonly done: DoneRow[], fd: number) {
    this.fd = fd;
  }

  /**
   * The output for `out`: a new OUT.partial, or the one a run with the same settings left (its whole
   * lines in `done`; a last line cut short is dropped).
   */
  static open(out: string, settings: Record<string, unknown>): ResumableOutput {
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    const partial = `${out}.partial`; const settingsFile = `${partial}.json`;
    const wanted = JSON.stringify(settings, null, 1);
    if (!fs.existsSync(partial)) {
      fs.writeFileSync(settingsFile, `${wanted}\n`);
      return new ResumableOutput(out, partial, settingsFile, [], fs.openSync(partial, 'w'));
    }
    let had: Record<string, unknown> | undefined;
    try { had = JSON.parse(fs.readFileSync(settingsFile, 'utf8')) as Record<string, unknown>; } catch { had = undefined; }
    if (!had) throw userError(`${partial} is there without its settings (${settingsFile}): delete it to start over`);
    const differ = [...new Set([...Object.keys(settings), ...Object.keys(had)])]
      .filter((k) => JSON.stringify(settings[k]) !== JSON.stringify(had![k]));
    if (differ.length) {
      throw userError(`${partial} holds the rows of a run with other settings (${differ.map((k) => `${k}: ${JSON.stringify(had![k])} then, ` +
        `${JSON.stringify(settings[k])} now`).join('; ')}): run it as before to take it up, or delete it to start over`);
    }
    // Whole lines only: a line cut by a kill is dropped (and cut off the file before more are added).
    const text = fs.readFileSync(partial, 'utf8');
    const done: DoneRow[] = [];
    let end = 0;
    for (let at = text.indexOf('\n'); at >= 0; at = text.indexOf('\n', end)) {
      let rec: { line?: unknown; prompt?: unknown };
      try { rec = JSON.parse(text.slice(end, at)) as typeof rec; } catch { break; }
      if (typeof rec.line !== 'number' || typeof rec.prompt !== 'string') break;
      done.push({ line: rec.line, prompt: rec.prompt });
      end = at + 1;
    }
    const fd = fs.openSync(partial, 'r+');
    fs.ftruncateSync(fd, Buffer.byteLength(text.slice(0, end)));
    fs.closeSync(fd);
    return new ResumableOutput(out, partial, settingsFile, done, fs.openSync(partial, 'a'));
  }

  /** Appends whole lines and makes them durable (a batch's, at a time). */
  write(text: string): void {
    if (this.fd === null) throw new Error(`${this.partial}: written after it was closed`);
    fs.writeSync(this.fd, text);
    fs.fsyncSync(this.fd);
  }

  /** Every row done: OUT.partial becomes OUT, its settings file goes. */
  commit(): void {
    this.close();
    fs.renameSync(this.partial, this.out);
    fs.rmSync(this.settingsFile, { force: true });
  }

  /** Removes OUT.partial and its settings (a run that wrote nothing). */
  discard(): void {
    this.close();
    fs.rmSync(this.partial, { force: true });
    fs.rmSync(this.settingsFile, { force: true });
  }

  /** Stopped before the end: the lines written stay in OUT.partial for the next run. */
  close(): void {
    if (this.fd !== null) { fs.closeSync(this.fd); this.fd = null; }
  }
}
