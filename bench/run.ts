// `npm run bench [-- --only NAME[,NAME...]] [-- --quick]`: runs every benchmark module in bench/ (a
// module exporting `name` and `run(options)`, see bench/lib/report.ts), prints the machine and then
// each report as Markdown tables on stdout (progress on stderr). Writes nothing into the repository:
// bench/RESULTS.md is updated by hand from this output. Every server a benchmark starts is stopped at
// the end, also on failure (test/support/cleanup.ts is the last resort at exit).
import { readdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { stopSharedPostgres } from "../test/support/postgres.js";
import { machineLines } from "./lib/machine.js";
import { releaseSharedMucRig } from "./lib/muc-rig.js";
import { renderReport, type BenchModule } from "./lib/report.js";

const USAGE = "usage: node dist/bench/run.js [--quick] [--only NAME[,NAME...]] [--list]";

async function loadModules(): Promise<(BenchModule & { file: string })[]> {
  const dir = dirname(fileURLToPath(import.meta.url));
  const modules: (BenchModule & { file: string })[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".js") && f !== "run.js").sort()) {
    const mod = (await import(pathToFileURL(join(dir, file)).href)) as Partial<BenchModule>;
    if (typeof mod.name === "string" && typeof mod.run === "function") modules.push({ ...(mod as BenchModule), file: basename(file, ".js") });
  }
  return modules.sort((a, b) => (a.order ?? 100) - (b.order ?? 100) || a.name.localeCompare(b.name));
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ options: { only: { type: "string", multiple: true }, quick: { type: "boolean", default: false }, list: { type: "boolean", default: false } } }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const all = await loadModules();
  if (args.list) {
    for (const m of all) process.stdout.write(`${m.name}\t(bench/${m.file}.ts)\n`);
    return 0;
  }
  const wanted = (args.only ?? []).flatMap((s) => s.split(",")).map((s) => s.trim()).filter(Boolean);
  const unknown = wanted.filter((w) => !all.some((m) => m.name === w || m.file === w));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark(s): ${unknown.join(", ")}; there are: ${all.map((m) => m.name).join(", ")}\n`);
    return 2;
  }
  const selected = wanted.length > 0 ? all.filter((m) => wanted.includes(m.name) || wanted.includes(m.file)) : all;

  const started = Date.now();
  const log = (message: string) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${message}\n`);
  process.stdout.write(`# dmuc-gateway benchmarks${args.quick ? " (--quick: smoke sizes, not a measurement)" : ""}\n\n`);
  process.stdout.write(machineLines().map((l) => `- ${l}`).join("\n") + "\n\n");

  let failed = 0;
  try {
    for (const [i, mod] of selected.entries()) {
      const t0 = Date.now();
      log(`${mod.name}: start`);
      try {
        const report = await mod.run({ quick: args.quick, log });
        process.stdout.write(renderReport(mod.name, report) + `\n(${mod.name} took ${((Date.now() - t0) / 1000).toFixed(0)} s)\n\n`);
      } catch (err) {
        failed++;
        process.stdout.write(`## ${mod.name}\n\nFAILED: ${(err as Error)?.stack ?? String(err)}\n\n`);
      }
      // A shared rig lives only as long as consecutive benchmarks use it.
      if (mod.rig !== selected[i + 1]?.rig || mod.rig === undefined) await releaseSharedMucRig().catch((err: unknown) => log(`stopping the rig failed: ${String(err)}`));
    }
  } finally {
    await releaseSharedMucRig().catch(() => undefined);
    await stopSharedPostgres().catch(() => undefined);
  }
  log(`done: ${selected.length - failed}/${selected.length} benchmarks ran`);
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
