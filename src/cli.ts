// Command-line parsing and help texts. Kept apart from main.ts so that it can be tested without IO.
import { parseArgs } from "node:util";
import { SETTINGS } from "./config.js";
import { parseAuditCommandLine, type AuditInvocation } from "./commands/audit.js";

export type CommandName = "start" | "migrate" | "links";

export type Invocation =
  | { kind: "run"; command: CommandName; configFile?: string; json?: boolean }
  | { kind: "help"; text: string }
  | { kind: "version" }
  | { kind: "usage-error"; message: string }
  /** A command that parses its own options (src/commands/audit.ts). */
  | Extract<AuditInvocation, { kind: "command" }>;

const SETTINGS_HELP = `Configuration comes from the environment, or from a JSON file given with --config whose keys
are the same variable names (the environment wins over the file):
  ${SETTINGS.xmppService.padEnd(26)}the XMPP server's component port, e.g. xmpp://127.0.0.1:5347 (required)
  ${SETTINGS.domain.padEnd(26)}the component's domain, e.g. conference.example.org (required)
  ${SETTINGS.secret.padEnd(26)}the component secret shared with the server (required)
  ${SETTINGS.admins.padEnd(26)}comma-separated bare JIDs of service administrators
  ${SETTINGS.localDomain.padEnd(26)}domain of the users served as a DMUC2 replica (default: parent of DMUC_DOMAIN)
  ${SETTINGS.databaseUrl.padEnd(26)}postgres:// URL; when unset an embedded PostgreSQL is started
  ${SETTINGS.dataDir.padEnd(26)}where the embedded PostgreSQL keeps its data (default ./data)
  ${SETTINGS.dbPort.padEnd(26)}port of the embedded PostgreSQL (default: a free port on 127.0.0.1)
  ${SETTINGS.logLevel.padEnd(26)}debug, info, warn or error (default info)
  ${SETTINGS.logFormat.padEnd(26)}json, text, or auto: json unless stderr is a terminal (default auto)
  ${SETTINGS.xmppDebug.padEnd(26)}true to trace every stanza in and out (@xmpp/debug)
  ${SETTINGS.maxBodyChars.padEnd(26)}longest message body accepted, in characters (default 10000)
  ${SETTINGS.maxHistoryMessages.padEnd(26)}most history messages sent on entering a room (default 100)
  ${SETTINGS.rateLimitPerSecond.padEnd(26)}stanzas per second one occupant may send to a room (default 10)
  ${SETTINGS.rateLimitBurst.padEnd(26)}burst allowance above that rate (default 30)
  ${SETTINGS.keepaliveSeconds.padEnd(26)}DMUC2: idle seconds before a link is pinged (default 60)
  ${SETTINGS.linkTimeoutSeconds.padEnd(26)}DMUC2: seconds without an answer before a link counts as split (default 30)
  ${SETTINGS.splitPingSeconds.padEnd(26)}DMUC2: how often a split link is pinged (default 5)
  ${SETTINGS.splitAway.padEnd(26)}DMUC2: show users behind a split link as away meanwhile (default true)
  ${SETTINGS.trustPrimaryEnter.padEnd(26)}DMUC2 replica without mod_dmuc_replica: accept ENTER unverified (default false)
  ${SETTINGS.splitEntry.padEnd(26)}DMUC2 replica: let local users enter a split room, decided at netjoin (default false)
  ${SETTINGS.auditTraffic.padEnd(26)}audit entries, exits, nick changes and messages too (default true)
  ${SETTINGS.retentionDays.padEnd(26)}days history and audit rows are kept, 0 forever (default 0)
  ${SETTINGS.retentionMinDays.padEnd(26)}shortest retention a room owner may choose, in days (default 1)
  ${SETTINGS.retentionMaxDays.padEnd(26)}longest retention a room owner may choose, 0 no limit (default 0)
  ${SETTINGS.pseudonymiseExports.padEnd(26)}'audit' and 'history' show pseudonyms instead of real JIDs (default false)`;

const MAIN_HELP = `dmuc-gateway: XEP-0045 group chat as an XMPP component, with XEP-0282 DMUC2 federation

Usage: dmuc-gateway <command> [--config FILE]

Commands:
  start      connect to the XMPP server and serve rooms (runs pending database migrations first)
  migrate    run pending database migrations and exit
  links      list the DMUC2 links (replicas of this gateway's rooms, rooms it replicates) and their state
  audit      query and export the audit trail; 'audit verify' checks its hash chains, 'audit head' prints them
  history    export a room's stored messages, also after the room is gone

Options:
  --config FILE   read settings from a JSON file
  --help, -h      show help (also: dmuc-gateway <command> --help)
  --version       print the version

${SETTINGS_HELP}

Exit codes: 0 clean stop, 1 could not start or failed, 2 bad command line or configuration.`;

const COMMAND_HELP: Record<CommandName, string> = {
  start: `Usage: dmuc-gateway start [--config FILE]

Opens the database (an embedded PostgreSQL when DATABASE_URL is unset), runs pending migrations,
connects to the XMPP server as an XEP-0114 component and serves rooms until SIGTERM or SIGINT.
A server that is down or restarting is retried with backoff; a refused secret stops the program.

${SETTINGS_HELP}`,
  migrate: `Usage: dmuc-gateway migrate [--config FILE]

Runs pending database migrations and exits. Needs only the database settings
(DATABASE_URL, or DMUC_DATA_DIR and DMUC_DB_PORT for the embedded server) besides the required ones.

${SETTINGS_HELP}`,
  links: `Usage: dmuc-gateway links [--json] [--config FILE]

Lists the DMUC2 links recorded in the database: for each room this gateway hosts, its replicas on
other servers (state negotiating, active or split, since when split, last heard); for each remote room
it replicates, its primary. Reads the database of a running gateway (its embedded PostgreSQL when it
runs one in DMUC_DATA_DIR) without disturbing it. --json prints the rows as JSON.

${SETTINGS_HELP}`,
};

const COMMANDS = Object.keys(COMMAND_HELP) as CommandName[];

export function parseCommandLine(argv: string[]): Invocation {
  const own = parseAuditCommandLine(argv);
  if (own) return own;
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
        json: { type: "boolean" },
      },
    });
  } catch (err) {
    return { kind: "usage-error", message: `${(err as Error).message}\nRun 'dmuc-gateway --help' for usage.` };
  }
  const { values, positionals } = parsed;
  if (values.version) return { kind: "version" };
  const [command, ...extra] = positionals;
  if (command === undefined || command === "help") {
    const topic = extra[0] as CommandName | undefined;
    if (values.help || command === "help") return { kind: "help", text: topic && COMMAND_HELP[topic] ? COMMAND_HELP[topic] : MAIN_HELP };
    return { kind: "usage-error", message: `missing command\n\n${MAIN_HELP}` };
  }
  if (!COMMANDS.includes(command as CommandName)) {
    return { kind: "usage-error", message: `unknown command '${command}' (commands: ${COMMANDS.join(", ")})` };
  }
  if (values.help) return { kind: "help", text: COMMAND_HELP[command as CommandName] };
  if (extra.length > 0) return { kind: "usage-error", message: `unexpected argument '${extra[0]}' after '${command}'` };
  if (values.json && command !== "links") return { kind: "usage-error", message: `--json goes with 'links' only` };
  return values.json ? { kind: "run", command: "links", configFile: values.config, json: true } : { kind: "run", command: command as CommandName, configFile: values.config };
}
