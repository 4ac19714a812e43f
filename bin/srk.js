#!/usr/bin/env node
// Entry point installed as `srk`; the TypeScript is compiled to dist/ by `npm run build`
// (run automatically by `npm ci` through the prepare script).
import '../dist/src/cli.js';
