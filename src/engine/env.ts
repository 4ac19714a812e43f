// Switches read from the environment (measuring and checking: SRK_ATTENTION, SRK_F16_COPIES, ...).
import { userError } from '../errors.js';

/**
 * A switch: undefined when unset or empty, else one of `allowed`; anything else is a user-facing
 * error naming the variable (read when first needed, so the CLI reports it as a one-line error).
 */
export function envChoice<T extends string>(name: string, allowed: readonly T[]): T | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!(allowed as readonly string[]).includes(raw)) {
    const list = allowed.length > 1 ? `${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1)}` : allowed[0];
    throw userError(`${name}=${raw}: expected ${list}`);
  }
  return raw as T;
}

/**
 * A whole-number setting: undefined when unset or empty, else a positive integer; anything else is a
 * user-facing error naming the variable and what it counts (`what`, e.g. "threads (1: none)").
 */
export function envPositiveInt(name: string, what: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!(Number.isInteger(n) && n > 0)) throw userError(`${name}=${raw}: expected a positive whole number of ${what}`);
  return n;
}
