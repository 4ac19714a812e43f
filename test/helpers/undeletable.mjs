// Loaded with `node --import` by test/train/save-cleanup.test.ts: a path matching TEST_UNDELETABLE (a regular
// expression) that exists cannot be removed (EACCES), as a read-only file inside it, or one a reader holds
// open on a network file system, makes it.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const match = new RegExp(process.env.TEST_UNDELETABLE ?? '^$');
const rm = fs.rmSync;
fs.rmSync = function (p, opts) {
  if (match.test(String(p)) && fs.existsSync(p)) throw Object.assign(new Error(`EACCES: permission denied, rmdir '${p}'`), { code: 'EACCES' });
  return rm.call(this, p, opts);
};
syncBuiltinESMExports();
