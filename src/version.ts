import { readFileSync } from "node:fs";

// package.json sits two levels above the compiled file (dist/src/version.js) and one above the source.
function readVersion(): string {
  for (const path of ["../../package.json", "../package.json"]) {
    try {
      return (JSON.parse(readFileSync(new URL(path, import.meta.url), "utf8")) as { version: string }).version;
    } catch {
      // try the next location
    }
  }
  return "unknown";
}

export const VERSION = readVersion();
