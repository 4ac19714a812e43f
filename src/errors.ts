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

/** File-system failures a user acts on (space, permissions, a read-only or missing place), by errno code. */
const USER_FS_CODES: Record<string, string> = {
  ENOSPC: 'the disk is full', EDQUOT: 'the disk quota is spent', EACCES: 'permission denied', EPERM: 'not permitted',
  EROFS: 'a read-only file system', ENOENT: 'no such directory', ENOTDIR: 'a path component is not a directory', EISDIR: 'a directory is in the way',
};

/**
 * An error writing `file`, said with the file and what it means (`ENOSPC: no space left on device, write`
 * named neither which file nor what was being saved); `what` names it for the reader ("the metrics of step 40").
 * File-system causes a user can act on are user-facing; anything else keeps its stack.
 */
export function fileWriteError(file: string, e: unknown, what?: string): Error {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' && e instanceof Error) return e; // not the file system's (a bug): as it was, with its stack
  const reason = typeof code === 'string' && Object.hasOwn(USER_FS_CODES, code) ? `${USER_FS_CODES[code]}: ${code}` : e instanceof Error ? e.message : String(e);
  const err = new Error(`cannot write ${what ? `${what} to ` : ''}${file} (${reason})`, { cause: e });
  return typeof code === 'string' && Object.hasOwn(USER_FS_CODES, code) ? Object.assign(err, { userFacing: true, code }) : Object.assign(err, { code });
}
