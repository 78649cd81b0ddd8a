// Worker entry: worker threads do not inherit tsx's or vitest's TypeScript loader in every setup, so the
// worker registers tsx itself before importing the TypeScript worker module.
import { register } from "tsx/esm/api";

register();
await import(new URL("./worker.ts", import.meta.url).href);
