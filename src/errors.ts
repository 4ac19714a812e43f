// Errors a user can act on (a bad flag, file, row or setting): the CLI prints their message without a
// stack trace (cli/run.ts fail). Everything else with a TypeError or ReferenceError is taken for a bug
// in srk and shown with its stack.
import { JsonlRowError } from './data/read-jsonl.js';

/** An error whose message is what the user needs (it names the flag, file, line or tensor). */
export function userError(message: string): Error {
  return Object.assign(new Error(message), { userFacing: true });
}

/** Whether `e` is marked as the user's to act on. */
export function isUserFacing(e: unknown): boolean {
  return e instanceof Error && (e as { userFacing?: boolean }).userFacing === true;
}

/** Errors in the user's data (a malformed line, `file:line: reason`; a missing or unreadable file), marked
 *  user-facing; any other error unchanged. */
export function dataError(e: unknown): unknown {
  const code = (e as { code?: unknown } | null)?.code;
  if (e instanceof JsonlRowError || code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') {
    return Object.assign(e as Error, { userFacing: true });
  }
  return e;
}
