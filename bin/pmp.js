#!/usr/bin/env node
// The `pmp` command; its source is bin/cli.ts, compiled to dist/bin/cli.js.
import '../dist/bin/cli.js';
