/**
 * Test helper run as a child process (`tsx server/edits/crash-server.ts ROOT [PAUSE_AT_VERSION]`): serves
 * ROOT on a free loopback port and prints `LISTENING <port>`. With PAUSE_AT_VERSION, the edit that would
 * commit that version writes all its files, prints `PAUSED <version>` and waits forever before its log row,
 * so the test can SIGKILL the server in the middle of the edit.
 */
import type { AddressInfo } from "node:net";
import { buildApp } from "../api/app.js";

const [root, pauseAt] = process.argv.slice(2);
if (!root) {
  process.stderr.write("usage: crash-server.ts ROOT [PAUSE_AT_VERSION]\n");
  process.exit(2);
}
const app = buildApp({
  root,
  edits: {
    measure: false,
    beforeCommit: async (version) => {
      if (pauseAt === undefined || version !== Number(pauseAt)) return;
      process.stdout.write(`PAUSED ${version}\n`);
      await new Promise<never>(() => {});
    },
  },
});
const server = app.listen(0, "127.0.0.1", () => {
  process.stdout.write(`LISTENING ${(server.address() as AddressInfo).port}\n`);
});
