#!/usr/bin/env node
// Entry point of the dmuc-gateway command.
import "reflect-metadata";
import { parseCommandLine } from "./cli.js";
import { ConfigError, loadConfig, type GatewayConfig } from "./config.js";
import { createLogger, type Logger } from "./log.js";
import { VERSION } from "./version.js";
import { Gateway } from "./shell/gateway.js";
import { openDatabaseShared, runMigrationsOnly } from "./db/database.js";
import { formatLinks, readLinks } from "./commands/links.js";
import { formatSummary, importRoom } from "./commands/import/run.js";
import { ImportError } from "./commands/import/source.js";
import { askPassword, progressBar } from "./commands/import/terminal.js";
import { parseJid } from "./xmpp/jid.js";
import type { ImportArguments } from "./cli.js";

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

function loggerFor(config: GatewayConfig): Logger {
  const json = config.logFormat === "auto" ? undefined : config.logFormat === "json";
  return createLogger({ level: config.logLevel, json });
}

async function serve(config: GatewayConfig, log: Logger): Promise<number> {
  const gateway = await Gateway.start(config, log);
  return new Promise((resolve) => {
    let stopping = false;
    const shutdown = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn("gateway.forced_exit", { signal });
        process.exit(EXIT_FAILED);
      }
      stopping = true;
      log.info("gateway.signal", { signal });
      gateway.stop().then(
        () => resolve(0),
        (err: unknown) => {
          log.error("gateway.stop_failed", { error: err });
          resolve(EXIT_FAILED);
        },
      );
    };
    process.on("SIGTERM", shutdown);
    process.on("SIGINT", shutdown);
  });
}

/** `dmuc-gateway import`: one summary line (or JSON) on success, one message and exit 1 on failure. */
async function runImport(args: ImportArguments, json: boolean, config: GatewayConfig, log: Logger): Promise<number> {
  const owner = parseJid(args.owner);
  if (!owner || owner.local === null) {
    process.stderr.write(`dmuc-gateway: --owner must be a user JID (user@domain): ${args.owner}\n`);
    return EXIT_USAGE;
  }
  let password = process.env.DMUC_IMPORT_PASSWORD;
  try {
    password ??= await askPassword(`Password for ${owner.local}@${owner.domain}: `);
  } catch (err) {
    process.stderr.write(`dmuc-gateway: ${(err as Error).message}\n`);
    return EXIT_USAGE;
  }
  const database = await openDatabaseShared(config, log);
  const progress = progressBar();
  try {
    const summary = await importRoom(
      { ...args, owner, password, domain: config.domain, maxHistoryMessages: config.maxHistoryMessages, progress },
      database.dataSource,
    );
    progress.finish();
    process.stdout.write(json ? JSON.stringify(summary, null, 2) + "\n" : formatSummary(summary) + "\n");
    return 0;
  } catch (err) {
    progress.finish();
    if (!(err instanceof ImportError)) throw err;
    log.warn("import.failed", { room: args.roomJid, reason: err.message });
    process.stderr.write(`dmuc-gateway: ${err.message}\n`);
    return EXIT_FAILED;
  } finally {
    await database.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const invocation = parseCommandLine(argv);
  switch (invocation.kind) {
    case "help":
      process.stdout.write(invocation.text + "\n");
      return 0;
    case "version":
      process.stdout.write(`dmuc-gateway ${VERSION}\n`);
      return 0;
    case "usage-error":
      process.stderr.write(`dmuc-gateway: ${invocation.message}\n`);
      return EXIT_USAGE;
  }

  let config: GatewayConfig;
  try {
    config = loadConfig(process.env, invocation.configFile);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`dmuc-gateway: ${err.message}\n`);
    return EXIT_USAGE;
  }
  const log = loggerFor(config);
  // A stanza must never take the process down: anything that escapes is logged, not fatal.
  process.on("unhandledRejection", (reason) => log.error("process.unhandled_rejection", { error: reason }));

  try {
    if (invocation.command === "migrate") {
      await runMigrationsOnly(config, log);
      return 0;
    }
    if (invocation.command === "import" && invocation.import) return await runImport(invocation.import, invocation.json === true, config, log);
    if (invocation.command === "links") {
      const database = await openDatabaseShared(config, log);
      try {
        const rows = await readLinks(database.dataSource);
        process.stdout.write(invocation.json ? JSON.stringify(rows, null, 2) + "\n" : formatLinks(rows));
      } finally {
        await database.close();
      }
      return 0;
    }
    return await serve(config, log);
  } catch (err) {
    log.error("gateway.failed", { error: err });
    process.stderr.write(`dmuc-gateway: ${(err as Error).message}\n`);
    return EXIT_FAILED;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`dmuc-gateway: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(EXIT_FAILED);
  },
);
