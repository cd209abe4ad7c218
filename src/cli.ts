// Command-line parsing and help texts. Kept apart from main.ts so that it can be tested without IO.
//
// Parsing is Node's own util.parseArgs, driven by the table of commands below. A framework such as
// commander would bring its own help layout, its own exits and its own error wording, all of which we
// would override to keep one message and exit code 2; the table stays small and the help is generated
// from it and from the settings table (src/config.ts).
import { parseArgs, type ParseArgsConfig } from "node:util";
import { settingsHelp, type CommandName } from "./config.js";
import { parseAuditCommandLine } from "./commands/audit.js";
import type { CommandContext } from "./commands/audit.js";

type OptionSpec = NonNullable<ParseArgsConfig["options"]>[string] & { help: string; value?: string };

interface CommandSpec {
  /** e.g. "rooms list" */
  readonly name: string;
  readonly command: CommandName;
  readonly positionals: readonly string[];
  readonly options: Readonly<Record<string, OptionSpec>>;
  readonly summary: string;
  readonly description: string;
}

const JSON_OPTION: OptionSpec = { type: "boolean", help: "print JSON instead of a table" };

const SPECS: readonly CommandSpec[] = [
  {
    name: "start",
    command: "start",
    positionals: [],
    options: {},
    summary: "connect to the XMPP server and serve rooms (runs pending database migrations first)",
    description: `Opens the database (an embedded PostgreSQL when DATABASE_URL is unset), runs pending migrations,
connects to the XMPP server as an XEP-0114 component and serves rooms until SIGTERM or SIGINT.
A server that is down or restarting is retried with backoff; a refused secret stops the program.
A second gateway for the same domain on the same database is refused.`,
  },
  {
    name: "migrate",
    command: "migrate",
    positionals: [],
    options: {},
    summary: "run pending database migrations and exit",
    description: `Runs pending database migrations and exits. Needs only the database settings (DATABASE_URL, or
DMUC_DATA_DIR and DMUC_DB_PORT for the embedded server).`,
  },
  {
    name: "links",
    command: "links",
    positionals: [],
    options: { json: JSON_OPTION },
    summary: "list the DMUC2 links and their state",
    description: `Lists the DMUC2 links recorded in the database: for each room this gateway hosts, its replicas on
other servers (state negotiating, active or split, since when split, last heard); for each remote room
it replicates, its primary. Reads the database of a running gateway (its embedded PostgreSQL when it
runs one in DMUC_DATA_DIR) without disturbing it.`,
  },
  {
    name: "rooms list",
    command: "rooms",
    positionals: [],
    options: { json: JSON_OPTION },
    summary: "list the rooms with their occupants, persistence and last activity",
    description: `Lists the rooms: occupants, persistent or temporary, public or hidden, last activity. Asks the
running gateway of DMUC_DOMAIN; with none running, reads the database.`,
  },
  {
    name: "rooms show",
    command: "rooms",
    positionals: ["ROOM"],
    options: { json: JSON_OPTION },
    summary: "show a room's configuration, affiliations and occupants",
    description: `Shows one room (ROOM is a room JID, or its name on DMUC_DOMAIN): configuration, affiliations
and occupants.`,
  },
  {
    name: "rooms create",
    command: "rooms",
    positionals: ["ROOM"],
    options: {
      name: { type: "string", value: "TEXT", help: "the room's name" },
      description: { type: "string", value: "TEXT", help: "the room's description" },
      temporary: { type: "boolean", help: "destroyed when the last occupant leaves (default: persistent)" },
      hidden: { type: "boolean", help: "not listed in disco#items (default: public)" },
      "members-only": { type: "boolean", help: "only members may enter" },
      password: { type: "string", value: "TEXT", help: "password to enter" },
      owner: { type: "string", multiple: true, value: "JID", help: "an owner (repeatable; default: none, service admins own every room)" },
    },
    summary: "create a room, configured and unlocked",
    description: `Creates a room as a service administrator would (the XEP-0050 command of the same name), effective
at once on the running gateway; with none running, the next start serves it.`,
  },
  {
    name: "rooms destroy",
    command: "rooms",
    positionals: ["ROOM"],
    options: {
      reason: { type: "string", value: "TEXT", help: "reason shown to the occupants" },
      venue: { type: "string", value: "JID", help: "alternate room the occupants are pointed to" },
    },
    summary: "destroy a room; its occupants are told why and where to go",
    description: `Destroys a room as a service administrator would (XEP-0045 §10.9): its occupants get the
<destroy/> with the reason and the alternate venue. Its history and audit trail are kept.`,
  },
  {
    name: "occupants",
    command: "occupants",
    positionals: ["ROOM"],
    options: { json: JSON_OPTION },
    summary: "list a room's occupants (nick, role, affiliation, real JIDs)",
    description: `Lists the occupants of a room: nickname, role, affiliation and the real JIDs of their sessions.`,
  },
  {
    name: "backup",
    command: "backup",
    positionals: ["FILE"],
    options: {},
    summary: "write every table of the database to FILE (no pg_dump needed)",
    description: `Writes a consistent snapshot of the gateway's database (rooms, affiliations, occupants, history,
audit trail, DMUC2 links) to FILE, gzip-compressed JSON lines. Works with the embedded server and with
DATABASE_URL, while the gateway runs; needs no PostgreSQL client tools. FILE "-" is stdout.`,
  },
  {
    name: "restore",
    command: "restore",
    positionals: ["FILE"],
    options: { force: { type: "boolean", help: "replace the data of a database that is not empty" } },
    summary: "load a backup into the database (the gateway must be stopped)",
    description: `Loads a backup made by 'dmuc-gateway backup' into the database (initialising the embedded one when
there is none yet), after applying the migrations. Refuses while a gateway serves this database, and
refuses a database that holds rooms unless --force is given (then its data is replaced).`,
  },
  {
    name: "import",
    command: "import",
    positionals: ["ROOM_JID"],
    options: {
      // Repeatable only because `rooms create` takes several owners under the same name; import takes one.
      owner: { type: "string", multiple: true, value: "JID", help: "the owner to log in as (required)" },
      server: { type: "string", value: "URL", help: "where to connect, xmpp://HOST:PORT (default: found from the owner's domain, as clients do)" },
      to: { type: "string", value: "LOCALPART", help: "the room's name here (default: the same local part)" },
      tombstone: { type: "boolean", help: "after a complete import, destroy the old room pointing to the new one" },
      "dry-run": { type: "boolean", help: "read and report, write nothing" },
      insecure: { type: "boolean", help: "allow logging in without TLS to a non-loopback address" },
      json: { type: "boolean", help: "print the summary as JSON" },
      "no-archive": { type: "boolean", help: "import the rest of a room that has no archive" },
    },
    summary: "move a room from another XMPP service here, with its configuration, lists and archive",
    description: `Logs in to the room's service as --owner (an owner of ROOM_JID; the password comes from
DMUC_IMPORT_PASSWORD, or is asked on the terminal) and reads, with standard XEP-0045/0313/0030 requests,
the room's configuration form, its owner, admin, member and outcast lists, its subject and its whole
archive; then creates the room here as LOCALPART@DMUC_DOMAIN (--to; default the same local part) with
the same settings (fields that cannot be mapped are reported), lists, subject and archive. Re-running
continues an interrupted import without storing anything twice. A running gateway serves the room at
once. The database is the gateway's (DATABASE_URL, or the embedded one in DMUC_DATA_DIR).
Exit codes: 0 imported, 1 failed (wrong password, not an owner, no such room, no archive, target
exists: one message says which), 2 bad command line or configuration.`,
  },
];

/** `dmuc-gateway import ROOM_JID --owner JID ...` (docs/OPERATIONS.md, "Moving a room here"). */
export interface ImportArguments {
  roomJid: string;
  owner: string;
  server?: string;
  to?: string;
  tombstone: boolean;
  dryRun: boolean;
  insecure: boolean;
  noArchive: boolean;
}

type OptionValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** The import's arguments, or what is wrong with them. */
function importArguments(args: string[], options: OptionValues): ImportArguments | string {
  const owners = (options.owner as string[] | undefined) ?? [];
  if (owners.length !== 1) return owners.length === 0 ? `'import' needs --owner JID (an owner of the room)` : `'import' takes one --owner`;
  const server = options.server as string | undefined;
  if (server !== undefined && !/^xmpps?:\/\/[^/\s]+:\d+$/.test(server)) return `--server must look like xmpp://HOST:PORT`;
  const parsed: ImportArguments = {
    roomJid: args[0]!,
    owner: owners[0]!,
    tombstone: options.tombstone === true,
    dryRun: options["dry-run"] === true,
    insecure: options.insecure === true,
    noArchive: options["no-archive"] === true,
  };
  if (server !== undefined) parsed.server = server;
  if (typeof options.to === "string") parsed.to = options.to;
  if (parsed.tombstone && parsed.dryRun) return `--tombstone and --dry-run exclude each other`;
  return parsed;
}

export type Invocation =
  | { kind: "run"; command: CommandName; name: string; args: string[]; options: OptionValues; configFile?: string; import?: ImportArguments }
  | { kind: "audit"; command: "audit" | "history"; configFile?: string; run: (context: CommandContext) => Promise<number> }
  | { kind: "help"; text: string }
  | { kind: "version" }
  | { kind: "usage-error"; message: string };

function usageLine(spec: CommandSpec): string {
  const options = Object.entries(spec.options).map(([name, o]) => `[--${name}${o.value ? ` ${o.value}` : ""}]`);
  return ["dmuc-gateway", spec.name, ...spec.positionals, ...options, "[--config FILE]"].join(" ");
}

function commandHelp(spec: CommandSpec): string {
  const options = Object.entries(spec.options).map(([name, o]) => `  ${`--${name}${o.value ? ` ${o.value}` : ""}`.padEnd(22)}${o.help}`);
  return [`Usage: ${usageLine(spec)}`, "", spec.description, ...(options.length > 0 ? ["", "Options:", ...options] : []), "", SETTINGS_INTRO, settingsHelp()].join("\n");
}

const SETTINGS_INTRO = `Configuration comes from the environment, or from a JSON file given with --config whose keys
are the same variable names (the environment wins over the file):`;

const MAIN_HELP = `dmuc-gateway: XEP-0045 group chat as an XMPP component, with XEP-0282 DMUC2 federation

Usage: dmuc-gateway <command> [options] [--config FILE]

Commands:
${SPECS.map((s) => `  ${s.name.padEnd(15)}${s.summary}`).join("\n")}
  ${"audit".padEnd(15)}query and export the audit trail; 'audit verify' checks its hash chains, 'audit head' prints them
  ${"history".padEnd(15)}export a room's stored messages, also after the room is gone

Options:
  --config FILE   read settings from a JSON file
  --help, -h      show help (also: dmuc-gateway <command> --help)
  --version       print the version

${SETTINGS_INTRO}
${settingsHelp()}

Exit codes: 0 clean stop, 1 could not start or failed (environment: server, database, files),
2 bad command line or configuration.`;

function findSpec(positionals: string[]): { spec: CommandSpec; rest: string[] } | { error: string } {
  const [first, second, ...rest] = positionals;
  const grouped = SPECS.filter((s) => s.name.startsWith(`${first} `));
  if (grouped.length > 0) {
    const spec = grouped.find((s) => s.name === `${first} ${second}`);
    if (!spec) {
      const actions = grouped.map((s) => s.name.split(" ")[1]).join(", ");
      return { error: second === undefined ? `'${first}' needs an action (${actions})` : `unknown action '${first} ${second}' (actions: ${actions})` };
    }
    return { spec, rest };
  }
  const spec = SPECS.find((s) => s.name === first);
  if (!spec) return { error: `unknown command '${first}' (commands: ${[...new Set(SPECS.map((s) => s.name.split(" ")[0]))].join(", ")})` };
  return { spec, rest: positionals.slice(1) };
}

export function parseCommandLine(argv: string[]): Invocation {
  // `audit` and `history` parse their own options (src/commands/audit.ts): repeatable filters and formats.
  const audit = parseAuditCommandLine(argv);
  if (audit) {
    if (audit.kind !== "command") return audit;
    return { kind: "audit", command: argv[0] as "audit" | "history", run: audit.run, ...(audit.configFile !== undefined ? { configFile: audit.configFile } : {}) };
  }
  // First pass: every option of every command, to find the command; the second checks its own.
  const allOptions: ParseArgsConfig["options"] = { config: { type: "string" }, help: { type: "boolean", short: "h" }, version: { type: "boolean" } };
  for (const spec of SPECS) for (const [name, o] of Object.entries(spec.options)) allOptions[name] = { type: o.type, ...(o.multiple ? { multiple: true } : {}) };
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: allOptions }));
  } catch (err) {
    return { kind: "usage-error", message: `${(err as Error).message}\nRun 'dmuc-gateway --help' for usage.` };
  }
  if (values.version) return { kind: "version" };
  if (positionals[0] === undefined || positionals[0] === "help") {
    if (values.help || positionals[0] === "help") {
      const topic = positionals.length > 1 ? findSpec(positionals.slice(1)) : undefined;
      return { kind: "help", text: topic && "spec" in topic ? commandHelp(topic.spec) : MAIN_HELP };
    }
    return { kind: "usage-error", message: `missing command\n\n${MAIN_HELP}` };
  }
  const found = findSpec(positionals);
  if ("error" in found) return { kind: "usage-error", message: `${found.error}\nRun 'dmuc-gateway --help' for usage.` };
  const { spec, rest } = found;
  if (values.help) return { kind: "help", text: commandHelp(spec) };
  for (const name of Object.keys(values)) {
    if (!["config", "help", "version"].includes(name) && !(name in spec.options)) {
      return { kind: "usage-error", message: `--${name} does not go with '${spec.name}'\nUsage: ${usageLine(spec)}` };
    }
  }
  if (rest.length < spec.positionals.length) return { kind: "usage-error", message: `'${spec.name}' needs ${spec.positionals.slice(rest.length).join(" ")}\nUsage: ${usageLine(spec)}` };
  if (rest.length > spec.positionals.length) return { kind: "usage-error", message: `unexpected argument '${rest[spec.positionals.length]}' after '${spec.name}'\nUsage: ${usageLine(spec)}` };
  const { config, help: _help, version: _version, ...options } = values;
  const configFile = typeof config === "string" ? { configFile: config } : {};
  if (spec.command === "import") {
    const parsed = importArguments(rest, options);
    if (typeof parsed === "string") return { kind: "usage-error", message: `${parsed}\nUsage: ${usageLine(spec)}` };
    return { kind: "run", command: spec.command, name: spec.name, args: rest, options, ...configFile, import: parsed };
  }
  return { kind: "run", command: spec.command, name: spec.name, args: rest, options, ...configFile };
}
