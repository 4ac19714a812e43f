// Loaded with `node --import` by test/train/disk-full.test.ts: the disk fills up for the files whose path
// matches TEST_DISK_FULL (a regular expression). Their first TEST_DISK_FULL_SKIP writes (default 0) go
// through; the next writes half its bytes and the one after fails with ENOSPC, as a filling disk does.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const match = new RegExp(process.env.TEST_DISK_FULL ?? '^$');
let skip = Number(process.env.TEST_DISK_FULL_SKIP ?? 0);
const full = new Set(); // fds of matching files
let short = false; // a write cut short: the next fails
const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });

const open = fs.openSync;
fs.openSync = function (p, ...rest) {
  const fd = open.call(this, p, ...rest);
  if (match.test(String(p))) full.add(fd);
  return fd;
};
const close = fs.closeSync;
fs.closeSync = function (fd) { full.delete(fd); return close.call(this, fd); };
const write = fs.writeSync;
fs.writeSync = function (fd, buf, ...rest) {
  if (!full.has(fd)) return write.call(this, fd, buf, ...rest);
  if (skip > 0) { skip--; return write.call(this, fd, buf, ...rest); }
  if (short) throw enospc();
  short = true;
  const bytes = typeof buf === 'string' ? Buffer.from(buf) : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const off = typeof rest[0] === 'number' ? rest[0] : 0;
  const len = typeof rest[1] === 'number' ? rest[1] : bytes.length - off;
  return write.call(this, fd, bytes, off, Math.max(1, Math.floor(len / 2)));
};
const writeFile = fs.writeFileSync;
fs.writeFileSync = function (f, data, opts) {
  if (typeof f !== 'number' || !full.has(f)) return writeFile.call(this, f, data, opts);
  const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  for (let off = 0; off < bytes.length;) off += fs.writeSync(f, bytes, off, bytes.length - off);
};
syncBuiltinESMExports();
