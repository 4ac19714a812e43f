// --out of srk generate and srk logprobs: one JSON line per input row, in order. The lines go to
// OUT.partial as they are made, beside OUT.partial.json (the settings that made them), and OUT.partial
// becomes OUT (fsync, rename) once every row is done. A run that stops before (Ctrl-C, SIGTERM, a bad
// row, a full disk) keeps the lines written, and the same command takes up after the last whole one:
// each line depends only on the settings and its row (a completion: on the prompt and the row's place,
// generate.ts), so the rows left come out as they would have. The settings must be the same (else it is
// refused, naming what differs); the caller checks that the rows already done are still the data's
// (srk generate: each row's prompt and line; srk logprobs: the data file's size and time in the
// settings). OUT.partial.lock (the writer's pid) keeps a second run off the same files while it lives.
import fs from 'node:fs';
import path from 'node:path';
import { userError } from '../errors.js';

/** A line already written, parsed. */
export type DoneRow = Record<string, unknown>;

/** Settings' values, compared as JSON; `files` maps each file to its "size:mtime" (only the changed ones are named). */
export type OutputSettings = Record<string, unknown> & { files?: Record<string, string> };

export class ResumableOutput {
  private fd: number | null;

  private constructor(readonly out: string, readonly partial: string, private readonly settingsFile: string, private readonly lock: string,
    readonly done: DoneRow[], fd: number) {
    this.fd = fd;
  }

  /**
   * The output for `out`: a new OUT.partial, or the one a run with the same settings left (its whole
   * lines in `done`; a last line cut short is dropped). A partial without a whole line is started over.
   */
  static open(out: string, settings: OutputSettings): ResumableOutput {
    try {
      fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    } catch (e) {
      throw userError(`--out ${out}: cannot make its directory (${(e as Error).message})`);
    }
    const partial = `${out}.partial`; const settingsFile = `${partial}.json`; const lock = `${partial}.lock`;
    takeLock(lock, out);
    try {
      if (fs.existsSync(partial)) {
        // Whole lines only: a line cut by a kill is dropped (and cut off the file before more are added).
        const text = fs.readFileSync(partial, 'utf8');
        const done: DoneRow[] = [];
        let end = 0;
        for (let at = text.indexOf('\n'); at >= 0; at = text.indexOf('\n', end)) {
          let rec: unknown;
          try { rec = JSON.parse(text.slice(end, at)); } catch { break; }
          if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) break;
          done.push(rec as DoneRow);
          end = at + 1;
        }
        if (done.length > 0) {
          let had: OutputSettings | undefined;
          try { had = JSON.parse(fs.readFileSync(settingsFile, 'utf8')) as OutputSettings; } catch { had = undefined; }
          if (!had) throw userError(`${partial} is there without its settings (${settingsFile}): delete it to start over`);
          const differ = describeDifferences(had, settings);
          if (differ.length) {
            throw userError(`${partial} holds the rows of a run with other settings (${differ.join('; ')}): run it as before to take it up, ` +
              'or delete it to start over');
          }
          const fd = fs.openSync(partial, 'r+');
          fs.ftruncateSync(fd, Buffer.byteLength(text.slice(0, end)));
          fs.closeSync(fd);
          return new ResumableOutput(out, partial, settingsFile, lock, done, fs.openSync(partial, 'a'));
        }
      }
      fs.writeFileSync(settingsFile, `${JSON.stringify(settings, null, 1)}\n`);
      return new ResumableOutput(out, partial, settingsFile, lock, [], fs.openSync(partial, 'w'));
    } catch (e) {
      fs.rmSync(lock, { force: true });
      throw e;
    }
  }

  /** Appends whole lines and makes them durable (a batch's, at a time). */
  write(text: string): void {
    if (this.fd === null) throw new Error(`${this.partial}: written after it was closed`);
    fs.writeFileSync(this.fd, text); // (loops over short writes)
    fs.fsyncSync(this.fd);
  }

  /** Every row done: OUT.partial becomes OUT, its settings file goes. */
  commit(): void {
    if (this.fd !== null) { fs.closeSync(this.fd); this.fd = null; }
    fs.renameSync(this.partial, this.out);
    fs.rmSync(this.settingsFile, { force: true });
    fs.rmSync(this.lock, { force: true });
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
    fs.rmSync(this.lock, { force: true });
  }
}

/** Creates the lock file with this process's pid; one whose process is gone (a SIGKILL) is taken over. */
function takeLock(lock: string, out: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lock, `${process.pid}\n`, { flag: 'wx' });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw userError(`--out ${out}: cannot create ${lock} (${(e as Error).message})`);
    }
    const pid = Number.parseInt(fs.readFileSync(lock, 'utf8'), 10);
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw userError(`another srk generate (pid ${pid}) is writing ${out}: wait for it to end, or stop it (its rows stay in ${out}.partial)`);
    }
    fs.rmSync(lock, { force: true });
  }
  throw userError(`--out ${out}: ${lock} keeps appearing; is another srk generate starting?`);
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** What differs between the settings a partial was made with and these, each as "key: then, now" (files by name). */
function describeDifferences(had: OutputSettings, now: OutputSettings): string[] {
  const out: string[] = [];
  for (const k of [...new Set([...Object.keys(had), ...Object.keys(now)])]) {
    if (k === 'files') {
      const a = had.files ?? {}; const b = now.files ?? {};
      const changed = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((f) => a[f] !== b[f]).sort();
      if (changed.length) out.push(`model files changed since: ${changed.join(', ')}`);
    } else if (JSON.stringify(had[k]) !== JSON.stringify(now[k])) {
      out.push(`${k}: ${JSON.stringify(had[k])} then, ${JSON.stringify(now[k])} now`);
    }
  }
  return out;
}

/**
 * Ctrl-C / SIGTERM while `sink` is written: the rows written stay in OUT.partial (nothing is left where
 * there are none), a line says so, and the process exits with 130 / 143. Returns what removes the
 * handlers (once OUT is whole, a signal has nothing to keep).
 */
export function keepOnSignal(sink: ResumableOutput | undefined, rowsDone: () => number, log: (s: string) => void): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    const n = rowsDone();
    if (sink && n === 0) sink.discard(); else sink?.close();
    log(`stopped by ${signal}${sink && n > 0 ? `; ${sink.partial} keeps the ${n} rows done: the same command takes up from there` : ''}`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal); process.once('SIGTERM', onSignal);
  return () => { process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); };
}

/** A file's size and modification time, "size:mtime": what tells a file changed in place from the same one without reading it. */
export function fileStamp(file: string): string {
  const st = fs.statSync(file);
  return `${st.size}:${Math.round(st.mtimeMs)}`;
}

