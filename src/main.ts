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
    if (invocation.kind === "command") return await invocation.run({ config, log, stdout: process.stdout });
    if (invocation.command === "migrate") {
      await runMigrationsOnly(config, log);
      return 0;
    }
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
