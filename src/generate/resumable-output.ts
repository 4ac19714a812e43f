// --out of srk generate and srk logprobs: one JSON line per input row, in order. The lines go to
// OUT.partial as they are made, beside OUT.partial.json (the settings that made them), and OUT.partial
// becomes OUT (fsync, rename) once every row is done. A run that stops before (Ctrl-C, SIGTERM, a bad
// row, a full disk) keeps the lines written, and the same command takes up after the last whole one:
// each line depends only on the settings and its row (a completion: on the prompt and the row's place,
// generate.ts), so the rows left come out as they would have. The settings must be the same (else it is
// refused, naming what differs); the caller checks that the rows already done are still the data's
// (srk generate: each row's prompt and line, in its lines; srk logprobs: a key of each row's content,
// kept in OUT.partial.rows, since its lines hold numbers only), so a bad row after them can be fixed
// and the run taken up. OUT.partial.lock (the writer's pid) keeps a second run off the same files.
import fs from 'node:fs';
import path from 'node:path';
import { userError } from '../errors.js';

/** The --out flag of the commands that write through a ResumableOutput (srk generate, srk logprobs). */
export const RESUMABLE_OUT_FLAG = {
  type: 'string',
  describe: 'write the JSON lines to this file instead of stdout: kept in OUT.partial as they are made, renamed to OUT at the end; a run stopped before is taken up by the same command',
} as const;

/** Refused before any work, which would otherwise end in a rename that cannot replace a directory. */
export function checkOutFlag(out: string | undefined, inputs: readonly string[] = [], flag = '--out'): void {
  if (out === undefined) return;
  if (fs.existsSync(out) && fs.statSync(out).isDirectory()) throw userError(`${flag} ${out}: a directory (give a file name)`);
  // The output replaces --out when it is done: --out naming an input would overwrite it (by another path or a link too).
  const same = (a: string, b: string): boolean => {
    if (path.resolve(a) === path.resolve(b)) return true;
    try { const x = fs.statSync(a); const y = fs.statSync(b); return x.dev === y.dev && x.ino === y.ino; } catch { return false; }
  };
  const input = inputs.find((f) => same(out, f));
  if (input !== undefined) throw userError(`${flag} ${out} is the input ${input}: the output would overwrite it; give another file name`);
}

/** A line already written, parsed. */
export type DoneRow = Record<string, unknown>;

/** Settings' values, compared as JSON; `files` maps each file to its "size:mtime" (only the changed ones are named). */
export type OutputSettings = Record<string, unknown> & { files?: Record<string, string> };

export class ResumableOutput {
  private fd: number | null;

  private keysFd: number | null = null;
  private committed = false;

  private constructor(readonly out: string, readonly partial: string, private readonly settingsFile: string, private readonly lock: string,
    readonly done: DoneRow[], fd: number, private readonly keysFile: string,
    /** A key of each done row's input (write()'s keys), where the caller gives them. */
    readonly doneKeys: string[]) {
    this.fd = fd;
  }

  /**
   * The output for `out`: a new OUT.partial, or the one a run with the same settings left (its whole
   * lines in `done`; a last line cut short is dropped). A partial without a whole line is started over.
   */
  static open(out: string, settings: OutputSettings, command: string): ResumableOutput {
    try {
      fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    } catch (e) {
      throw userError(`--out ${out}: cannot make its directory (${(e as Error).message})`);
    }
    const partial = `${out}.partial`; const settingsFile = `${partial}.json`; const lock = `${partial}.lock`; const keysFile = `${partial}.rows`;
    takeLock(lock, out, command);
    try {
      if (fs.existsSync(partial)) {
        // Whole lines only: a line cut by a kill is dropped (and cut off the file before more are added).
        const text = fs.readFileSync(partial, 'utf8');
        const done: DoneRow[] = [];
        const ends: number[] = []; // where each whole line ends
        let end = 0;
        for (let at = text.indexOf('\n'); at >= 0; at = text.indexOf('\n', end)) {
          let rec: unknown;
          try { rec = JSON.parse(text.slice(end, at)); } catch { break; }
          if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) break;
          done.push(rec as DoneRow);
          end = at + 1;
          ends.push(end);
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
          // Row keys go out before their lines (write()): a line without its key (a kill between the two) is dropped.
          const keyed = fs.existsSync(keysFile);
          const keys = keyed ? fs.readFileSync(keysFile, 'utf8').split('\n').slice(0, -1) : []; // (whole lines: a cut last one is dropped)
          if (keyed && keys.length < done.length) {
            done.length = keys.length;
            end = keys.length ? ends[keys.length - 1] : 0;
          }
          const fd = fs.openSync(partial, 'r+');
          fs.ftruncateSync(fd, Buffer.byteLength(text.slice(0, end)));
          fs.closeSync(fd);
          const doneKeys = keyed ? keys.slice(0, done.length) : [];
          if (keyed) fs.writeFileSync(keysFile, doneKeys.map((k) => `${k}\n`).join(''));
          const r = new ResumableOutput(out, partial, settingsFile, lock, done, fs.openSync(partial, 'a'), keysFile, doneKeys);
          if (keyed) r.keysFd = fs.openSync(keysFile, 'a');
          return r;
        }
      }
      fs.writeFileSync(settingsFile, `${JSON.stringify(settings, null, 1)}\n`);
      fs.rmSync(keysFile, { force: true });
      return new ResumableOutput(out, partial, settingsFile, lock, [], fs.openSync(partial, 'w'), keysFile, []);
    } catch (e) {
      fs.rmSync(lock, { force: true });
      throw e;
    }
  }

  /**
   * Appends whole lines and makes them durable (a batch's, at a time); `keys`, one per line, name the
   * rows they came from (OUT.partial.rows), written first.
   */
  write(text: string, keys?: readonly string[]): void {
    if (this.fd === null) throw new Error(`${this.partial}: written after it was closed`);
    // A failed write (a full disk) names its file: the lines before it stay, and a torn last one is dropped on the next run.
    const named = (file: string, f: () => void) => {
      try { f(); } catch (e) { throw userError(`${file}: ${e instanceof Error ? e.message : String(e)}`); }
    };
    if (keys) {
      named(this.keysFile, () => {
        this.keysFd ??= fs.openSync(this.keysFile, 'a');
        fs.writeFileSync(this.keysFd, keys.map((k) => `${k}\n`).join(''));
        fs.fsyncSync(this.keysFd);
      });
    }
    named(this.partial, () => {
      fs.writeFileSync(this.fd!, text); // (loops over short writes)
      fs.fsyncSync(this.fd!);
    });
  }

  /** Every row done: OUT.partial becomes OUT, its settings file goes. */
  commit(): void {
    this.closeFiles();
    fs.renameSync(this.partial, this.out);
    fs.rmSync(this.settingsFile, { force: true });
    fs.rmSync(this.keysFile, { force: true });
    fs.rmSync(this.lock, { force: true });
    this.committed = true;
  }

  /**
   * The run stopped before OUT was whole (an error, a signal): the `rowsDone` rows written stay in
   * OUT.partial (where there are none, nothing is left behind). Returns the line that says so, or
   * undefined. `fixFirst`: the error is the data's or a flag's, to mend before the next run.
   */
  stopped(rowsDone: number, fixFirst = false): string | undefined {
    if (this.committed) return undefined;
    if (rowsDone === 0) { this.discard(); return undefined; }
    this.close();
    return `${this.partial} keeps the ${rowsDone} rows done: ${fixFirst ? 'fix what the error names and ' : ''}run the same command to take up from there`;
  }

  private closeFiles(): void {
    if (this.fd !== null) { fs.closeSync(this.fd); this.fd = null; }
    if (this.keysFd !== null) { fs.closeSync(this.keysFd); this.keysFd = null; }
  }

  /** Removes OUT.partial and its settings (a run that wrote nothing). */
  discard(): void {
    this.close();
    fs.rmSync(this.partial, { force: true });
    fs.rmSync(this.settingsFile, { force: true });
    fs.rmSync(this.keysFile, { force: true });
  }

  /** Stopped before the end: the lines written stay in OUT.partial for the next run. */
  close(): void {
    this.closeFiles();
    fs.rmSync(this.lock, { force: true });
  }
}

/** Creates the lock file with this process's pid; one whose process is gone (a SIGKILL) is taken over. */
function takeLock(lock: string, out: string, command: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lock, `${process.pid}\n`, { flag: 'wx' });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw userError(`--out ${out}: cannot create ${lock} (${(e as Error).message})`);
    }
    const pid = Number.parseInt(fs.readFileSync(lock, 'utf8'), 10);
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw userError(`another ${command} (pid ${pid}) is writing ${out}: wait for it to end, or stop it (its rows stay in ${out}.partial)`);
    }
    fs.rmSync(lock, { force: true });
  }
  throw userError(`--out ${out}: ${lock} keeps appearing; is another ${command} starting?`);
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
    const kept = sink?.stopped(rowsDone());
    log(`stopped by ${signal}${kept ? `; ${kept}` : ''}`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal); process.once('SIGTERM', onSignal);
  return () => { process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); };
}
