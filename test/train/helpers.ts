// Shared helpers of the end-to-end training tests: the built CLI (`node bin/srk.js train`) in a
// child process, temp run directories, and metrics.jsonl reading.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll } from 'vitest';

export const root = resolve(import.meta.dirname, '../..');
export const srk = resolve(root, 'bin/srk.js');
export const fixture = (name: string) => resolve(root, 'test/fixtures/hf', name);

export interface RunResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** A temp directory removed after the test file (kept when SRK_KEEP_TMP is set). */
export function tempDir(prefix = 'srk-train-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => { if (!process.env.SRK_KEEP_TMP) rmSync(d, { recursive: true, force: true }); });
  return d;
}

/**
 * Starts `srk train ARGS` (the `--plain-progress` flag is added so stderr is line-oriented). A run
 * still going after `killAfterMs` (one that ignored a signal, or hangs) is killed so that no
 * process outlives a failed test.
 */
export function startTrain(args: string[], killAfterMs = 110_000, env?: Record<string, string>): { child: ChildProcess; done: Promise<RunResult>; output: () => string } {
  const child = spawn(process.execPath, [srk, 'train', '--plain-progress', ...args],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: env ? { ...process.env, ...env } : process.env });
  const guard = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  child.on('close', () => clearTimeout(guard));
  let stdout = ''; let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  const done = new Promise<RunResult>((res, rej) => {
    child.on('error', rej);
    child.on('close', (code, signal) => res({ code, signal, stdout, stderr }));
  });
  return { child, done, output: () => stdout + stderr };
}

/** Runs `srk train ARGS` to the end (with extra environment variables if given). */
export function train(args: string[], env?: Record<string, string>): Promise<RunResult> { return startTrain(args, undefined, env).done; }

/** The common flags of a run on a fixture with its own pairs and (by default) its _ref reference. */
export function fixtureArgs(name: string, o: { ref?: boolean } = {}): string[] {
  const a = ['--model', fixture(name), '--data', join(fixture(name), 'pairs.jsonl'), '--no-eos'];
  if (o.ref ?? true) a.push('--ref-model', fixture(`${name}_ref`));
  return a;
}

export type Metrics = Record<string, number | null>;

/** The lines of OUT/metrics.jsonl (complete lines only). */
export function readMetrics(out: string): Metrics[] {
  const f = join(out, 'metrics.jsonl');
  if (!existsSync(f)) return [];
  const text = readFileSync(f, 'utf8');
  const end = text.lastIndexOf('\n');
  if (end < 0) return [];
  return text.slice(0, end).split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Metrics);
}

/** Polls until `cond` holds (or throws after `timeoutMs`). */
export async function waitFor(cond: () => boolean, timeoutMs: number, what: string, pollMs = 20): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** A readable failure message for a CLI run. */
export function describeRun(r: RunResult): string {
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** Header of a safetensors file: tensor name -> dtype, shape, byte offsets in the data section. */
export function safetensorsHeader(buf: Buffer): { dataStart: number; tensors: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> } {
  const n = Number(buf.readBigUInt64LE(0));
  const h = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  delete h.__metadata__;
  return { dataStart: 8 + n, tensors: h as never };
}

/** Rewrites the F32 tensor `name` of a safetensors file in place, each value through `f`. */
export function editF32Tensor(file: string, name: string, f: (x: number) => number): void {
  const buf = readFileSync(file);
  const { dataStart, tensors } = safetensorsHeader(buf);
  const t = tensors[name];
  if (!t || t.dtype !== 'F32') throw new Error(`editF32Tensor: ${file} has no F32 tensor ${name}`);
  const [a, b] = t.data_offsets;
  for (let o = dataStart + a; o < dataStart + b; o += 4) buf.writeFloatLE(f(buf.readFloatLE(o)), o);
  writeFileSync(file, buf);
}

/** Every F32 tensor of a safetensors file, by name (another dtype is an error). */
export function f32Tensors(file: string): Map<string, Float32Array> {
  const buf = readFileSync(file);
  const { dataStart, tensors: h } = safetensorsHeader(buf);
  const out = new Map<string, Float32Array>();
  for (const [name, t] of Object.entries(h)) {
    if (t.dtype !== 'F32') throw new Error(`${file}: ${name} is ${t.dtype}`);
    const bytes = buf.subarray(dataStart + t.data_offsets[0], dataStart + t.data_offsets[1]);
    out.set(name, new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
  }
  return out;
}

/** Global L2 norm of all F32 tensors of a safetensors file. */
export function safetensorsNorm(file: string): number {
  const buf = readFileSync(file);
  const { dataStart, tensors } = safetensorsHeader(buf);
  let s = 0;
  for (const t of Object.values(tensors)) {
    if (t.dtype !== 'F32') throw new Error(`${file}: ${t.dtype} tensor`);
    for (let o = dataStart + t.data_offsets[0]; o < dataStart + t.data_offsets[1]; o += 4) s += buf.readFloatLE(o) ** 2;
  }
  return Math.sqrt(s);
}
