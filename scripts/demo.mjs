#!/usr/bin/env node
// `npm start`: scripts/demo.ts, run from the CLI's bundle (cli-bundle.mjs says why).
import { launch } from "./cli-bundle.mjs";

await launch("demo");
