// Where the model tests find their data: the project's copies under test/fixtures/hf, and the
// shared folder beside the clone (../shared) for large files that are not committed.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const FIXTURES = path.join(repoRoot, 'test/fixtures/hf');
export const MODELS = ['gpt-neox-tiny', 'mistral-tiny', 'llama-tiny-tied'] as const;

/** A file of the shared folder (../shared/<rel>), or null when it is not there. */
export function sharedFile(rel: string): string | null {
  const p = path.resolve(repoRoot, '../shared', rel);
  return existsSync(p) ? p : null;
}
