#!/usr/bin/env node
// Entry point of the dmuc-gateway command.
import "reflect-metadata";
import { parseCommandLine, type Invocation } from "./cli.js";
import { ConfigError, loadConfig, type GatewayConfig } from "./config.js";
import { createLogger, type Logger } from "./log.js";
import { VERSION } from "./version.js";
import { Gateway, StartAborted } from "./shell/gateway.js";
import { openExistingDatabase, runMigrationsOnly } from "./db/database.js";
import { formatLinks, readLinks } from "./commands/links.js";

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

type RunInvocation = Extract<Invocation, { kind: "run" }>;

function loggerFor(config: GatewayConfig): Logger {
  const json = config.logFormat === "auto" ? undefined : config.logFormat === "json";
  return createLogger({ level: config.logLevel, json });
}

/**
 * Serves until SIGTERM or SIGINT. The signals are taken before anything starts: a stop while the
 * database opens or the first connection attempts are retried is a clean stop too (exit 0).
 */
async function serve(config: GatewayConfig, log: Logger): Promise<number> {
  const abort = new AbortController();
  let gateway: Gateway | undefined;
  let stopped: Promise<number> | undefined;
  let resolveStopped: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (resolveStopped = resolve));
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopped) {
      log.warn("gateway.forced_exit", { signal });
      process.exit(EXIT_FAILED);
    }
    log.info("gateway.signal", { signal });
    abort.abort();
    stopped = (gateway ? gateway.stop() : Promise.resolve()).then(
      () => 0,
      (err: unknown) => {
        log.error("gateway.stop_failed", { error: err });
        return EXIT_FAILED;
      },
    );
    void stopped.then(resolveStopped);
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
  try {
    gateway = await Gateway.start(config, log, abort.signal);
  } catch (err) {
    if (err instanceof StartAborted) return (await stopped) ?? 0;
    throw err;
  }
  if (abort.signal.aborted) await gateway.stop();
  return finished;
}

async function runCommand(invocation: RunInvocation, config: GatewayConfig, log: Logger): Promise<number> {
  switch (invocation.command) {
    case "start":
      return serve(config, log);
    case "migrate":
      await runMigrationsOnly(config, log);
      return 0;
    case "links": {
      const database = await openExistingDatabase(config, log);
      try {
        const rows = await readLinks(database.dataSource);
        process.stdout.write(invocation.options.json ? JSON.stringify(rows, null, 2) + "\n" : formatLinks(rows));
      } finally {
        await database.close();
      }
      return 0;
    }
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
    config = loadConfig(process.env, invocation.configFile, invocation.command);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`dmuc-gateway: ${err.message}\n`);
    return EXIT_USAGE;
  }
  // Commands print their results on stdout; their log stays quiet unless something goes wrong.
  const log = invocation.command === "start" || invocation.command === "migrate" || process.env.DMUC_LOG_LEVEL ? loggerFor(config) : loggerFor({ ...config, logLevel: "warn" });
  // A stanza must never take the process down: anything that escapes is logged, not fatal.
  process.on("unhandledRejection", (reason) => log.error("process.unhandled_rejection", { error: reason }));

  try {
    return await runCommand(invocation, config, log);
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
