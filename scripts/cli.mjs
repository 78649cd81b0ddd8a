#!/usr/bin/env node
// The command line (`npm run vemscope`): scripts/vemscope.ts, run from its bundle (cli-bundle.mjs says why).
import { launch } from "./cli-bundle.mjs";

await launch("vemscope");
