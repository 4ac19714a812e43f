// Writes dist/BUILD (the commit the build came from, `-dirty` with uncommitted changes), so results
// from a machine that gets a copy of dist/ without the repository (the lent GPU) name their code.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
let id = 'unknown';
try { id = execFileSync('git', ['describe', '--always', '--dirty'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { /* not a git checkout */ }
writeFileSync(new URL('../dist/BUILD', import.meta.url), `${id}\n`);
