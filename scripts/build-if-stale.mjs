#!/usr/bin/env node
// Runs before `npm start`: the gateway starts from its compiled output (dist/), which `npm ci` or
// `npm pack` built once (the `prepare` script). In a source checkout where a TypeScript file changed
// since that build, it says so and rebuilds, so that a developer never runs stale code; in an installed
// package (no sources, no compiler) it only checks that the compiled output is there.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const main = join(root, "dist", "src", "main.js");
const SOURCES = ["src", "plugins", "entities", "ormconfig.ts", "tsconfig.json"];

function typescript() {
  try {
    return createRequire(join(root, "package.json")).resolve("typescript/bin/tsc");
  } catch {
    return undefined;
  }
}

function newestSource(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return /\.(ts|json)$/.test(path) ? st.mtimeMs : 0;
  return Math.max(0, ...readdirSync(path).map((name) => newestSource(join(path, name))));
}

const tsc = typescript();
const built = existsSync(main) ? statSync(main).mtimeMs : 0;
const force = process.argv.includes("--always");
if (!tsc) {
  if (built) process.exit(0);
  process.stderr.write(
    `dmuc-gateway: ${main} is missing and TypeScript is not installed: build it with 'npm ci' (which installs ` +
      `the compiler), or install the package made by 'npm pack', which ships it compiled.\n`,
  );
  // At `npm ci --omit=dev` (prepare) this is only a warning: `npm start` fails with it.
  process.exit(force ? 0 : 1);
}
const sources = Math.max(...SOURCES.map((p) => newestSource(join(root, p))));
if (!force && built && sources <= built) process.exit(0);
if (!force) process.stderr.write(built ? "dmuc-gateway: sources changed since the last build, building\n" : "dmuc-gateway: building\n");
execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.json")], { stdio: "inherit", cwd: root });
