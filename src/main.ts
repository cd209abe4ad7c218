#!/usr/bin/env node
// Entry point of the dmuc-gateway command.
import "reflect-metadata";
import { parseCommandLine, type Invocation } from "./cli.js";
import { ConfigError, loadConfig, type GatewayConfig } from "./config.js";
import { createLogger, type Logger } from "./log.js";
import { VERSION } from "./version.js";
import { Gateway, StartAborted } from "./shell/gateway.js";
import { openExistingDatabase, openSharedDatabase, runMigrationsOnly } from "./db/database.js";
import { formatLinks, readLinks } from "./commands/links.js";
import { formatAdminResult, runRoomsCommand } from "./commands/rooms.js";
import { BackupError, backup, restore } from "./commands/backup.js";
import { AdminError, type AdminCommand } from "../plugins/admin-commands.js";
import { formatSummary, importRoom } from "./commands/import/run.js";
import { ImportError } from "./commands/import/source.js";
import { askPassword, progressBar } from "./commands/import/terminal.js";
import { parseJid } from "./xmpp/jid.js";
import type { ImportArguments } from "./cli.js";

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

/** The administrator's command a `rooms ...` or `occupants` command line stands for. */
function adminCommandOf(invocation: RunInvocation): AdminCommand {
  const { name, args, options } = invocation;
  const room = args[0] ?? "";
  const text = (key: string) => (typeof options[key] === "string" ? (options[key] as string) : undefined);
  switch (name) {
    case "rooms list":
      return { op: "rooms.list" };
    case "rooms show":
      return { op: "rooms.show", room };
    case "occupants":
      return { op: "occupants", room };
    case "rooms destroy":
      return { op: "rooms.destroy", room, ...(text("reason") !== undefined && { reason: text("reason") }), ...(text("venue") !== undefined && { venue: text("venue") }) };
    default:
      return {
        op: "rooms.create",
        room,
        persistent: options.temporary !== true,
        public: options.hidden !== true,
        membersOnly: options["members-only"] === true,
        owners: Array.isArray(options.owner) ? options.owner.map(String) : [],
        ...(text("name") !== undefined && { name: text("name") }),
        ...(text("description") !== undefined && { description: text("description") }),
        ...(text("password") !== undefined && { password: text("password") }),
      };
  }
}

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
  const started = gateway;
  void started.failed.then(async (error) => {
    if (stopped) return;
    log.error("gateway.domain_taken", { error: error.message });
    process.stderr.write(`dmuc-gateway: ${error.message}\n`);
    stopped = started.stop().then(() => EXIT_FAILED, () => EXIT_FAILED);
    resolveStopped(await stopped);
  });
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
    case "backup":
    case "restore": {
      const file = invocation.args[0]!;
      try {
        const done = invocation.command === "backup" ? await backup(config, log, file) : await restore(config, log, file, invocation.options.force === true);
        const verb = invocation.command === "backup" ? `backed up ${done.rows} rows of ${done.tables} tables to` : `restored ${done.rows} rows of ${done.tables} tables from`;
        (file === "-" ? process.stderr : process.stdout).write(`${verb} ${file === "-" ? "the standard stream" : file}\n`);
        return 0;
      } catch (err) {
        if (!(err instanceof BackupError)) throw err;
        process.stderr.write(`dmuc-gateway: ${err.message}\n`);
        return EXIT_FAILED;
      }
    }
    case "import":
      return runImport(invocation.import!, invocation.options.json === true, config, log);
    case "rooms":
    case "occupants": {
      try {
        const result = await runRoomsCommand(config, log, adminCommandOf(invocation));
        process.stdout.write(invocation.options.json ? JSON.stringify(result, null, 2) + "\n" : formatAdminResult(result));
        return 0;
      } catch (err) {
        if (!(err instanceof AdminError)) throw err;
        process.stderr.write(`dmuc-gateway: ${err.message}\n`);
        return err.kind === "bad-request" ? EXIT_USAGE : EXIT_FAILED;
      }
    }
    case "audit":
    case "history":
      // Parsed as their own invocation kind (src/commands/audit.ts) and run before this switch.
      throw new Error(`'${invocation.command}' is not run through the command table`);
  }
}

/** `dmuc-gateway import`: one summary line (or JSON) on success, one message and exit 1 on failure. */
async function runImport(args: ImportArguments, json: boolean, config: GatewayConfig, log: Logger): Promise<number> {
  const owner = parseJid(args.owner);
  if (!owner || owner.local === null) {
    process.stderr.write(`dmuc-gateway: --owner must be a user JID (user@domain): ${args.owner}\n`);
    return EXIT_USAGE;
  }
  let password = config.importPassword;
  try {
    password ??= await askPassword(`Password for ${owner.local}@${owner.domain}: `);
  } catch (err) {
    process.stderr.write(`dmuc-gateway: ${(err as Error).message}\n`);
    return EXIT_USAGE;
  }
  const database = await openSharedDatabase(config, log);
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
    if (invocation.kind === "audit") return await invocation.run({ config, log, stdout: process.stdout });
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
