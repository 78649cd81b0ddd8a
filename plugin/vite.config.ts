import { fileURLToPath } from "node:url";
import { defaultClientConditions, defineConfig, type Plugin } from "vite";

const pluginDir = fileURLToPath(new URL(".", import.meta.url));
const repoRoot = fileURLToPath(new URL("..", import.meta.url));

/**
 * Neuroglancer's lib writes `new Worker(/* webpackChunkName: "..." *\/ new URL(...))`.
 * With Vite 8 (rolldown) that comment stops the worker URL from being recognised,
 * so the chunk worker never starts and the canvas stays grey without any error.
 * Blanking the comment with spaces (same length, so source maps stay aligned) fixes it.
 */
function stripWebpackChunkNames(): Plugin {
  const comment = /\/\*\s*webpackChunkName:[^*]*\*\//g;
  return {
    name: "vemscope:strip-webpack-chunk-names",
    enforce: "pre",
    transform(code, id) {
      if (!id.includes("/node_modules/neuroglancer/lib/") || !code.includes("webpackChunkName")) {
        return null;
      }
      return { code: code.replace(comment, (m) => " ".repeat(m.length)), map: null };
    },
  };
}

export default defineConfig({
  root: pluginDir,
  // Relative asset URLs: the viewer is served from `/` by `vemscope serve` but may sit under any prefix.
  base: "",
  resolve: {
    // Setting `conditions` replaces Vite's defaults, so they must be kept explicitly;
    // the neuroglancer conditions drop every data source except precomputed from all bundles.
    conditions: [
      ...defaultClientConditions,
      "neuroglancer/datasource:none_by_default",
      "neuroglancer/datasource/precomputed:enabled",
    ],
  },
  plugins: [stripWebpackChunkNames()],
  worker: {
    // Neuroglancer's workers use dynamic imports, which the default iife format cannot express.
    format: "es",
    plugins: () => [stripWebpackChunkNames()],
  },
  build: {
    outDir: `${repoRoot}dist/plugin`,
    // outDir lies outside `root`, where Vite refuses to empty it unless told to.
    emptyOutDir: true,
    // Neuroglancer's main chunk is legitimately ~2 MB; the default warning is noise.
    chunkSizeWarningLimit: 4 * 1024 * 1024,
  },
  optimizeDeps: {
    // The dev server must discover neuroglancer's transitive deps from every bundle entry,
    // and cannot pre-bundle neuroglancer itself (esbuild rejects its `new URL` worker syntax).
    entries: [
      "index.html",
      "../node_modules/neuroglancer/lib/main.bundle.js",
      "../node_modules/neuroglancer/lib/async_computation.bundle.js",
      "../node_modules/neuroglancer/lib/chunk_worker.bundle.js",
    ],
    exclude: ["neuroglancer"],
  },
});
