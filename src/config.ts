// Gateway configuration: ONE table of settings (SETTINGS below). Each entry names its environment
// variable, its type (a parser that also validates), its default and its documentation; the
// environment, the --config JSON file, validation, `--help` and the README table (checked by
// test/unit/config.test.ts) all come from it. Adding a setting is adding one entry.
//
// Not class-validator any more: its decorators described a setting in a second place (the class) apart
// from its variable name and documentation, and its messages could not say what to fix for a URL
// without a port. Each parser here is a few lines and returns the message an operator reads.
import { readFileSync } from "node:fs";
import { LOG_LEVELS } from "./log.js";
import { parseBareJid } from "./xmpp/jid.js";

/** The commands, as far as configuration is concerned: each needs its own required settings. */
export const COMMANDS = ["start", "migrate", "links", "rooms", "occupants", "backup", "restore", "import", "audit", "history"] as const;
export type CommandName = (typeof COMMANDS)[number];

type RawValue = string | number | boolean | string[];

/** A bad value: the message completes "DMUC_X ..." and says what is expected. */
class Invalid extends Error {}

interface Setting<T> {
  /** The environment variable, also the key in the --config file. */
  readonly env: string;
  /** One line for --help and the README. */
  readonly doc: string;
  readonly default?: T;
  /** The default as documented, when it is not a plain value (e.g. derived from another setting). */
  readonly defaultDoc?: string;
  /** Commands that cannot run without it (others never read it). */
  readonly requiredFor?: readonly CommandName[];
  /** Not echoed in messages (passwords, secrets). */
  readonly secret?: boolean;
  parse(value: RawValue): T;
}

type Spec<T> = Omit<Setting<T>, "parse">;

// ---------------------------------------------------------------------------------------------
// Types

const text = (value: RawValue): string => {
  if (typeof value !== "string") throw new Invalid("must be text");
  if (value.trim() === "") throw new Invalid("must not be empty");
  return value;
};

function integer(min: number, max = Number.MAX_SAFE_INTEGER, unit = "a whole number") {
  return (value: RawValue): number => {
    const n = typeof value === "number" ? value : typeof value === "string" && /^\s*-?\d+\s*$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n)) throw new Invalid(`must be ${unit}`);
    if (n < min || n > max) throw new Invalid(max === Number.MAX_SAFE_INTEGER ? `must be at least ${min}` : `must be from ${min} to ${max}`);
    return n;
  };
}

const port = integer(1, 65535, "a port number");

const BOOLEAN_WORDS: Record<string, boolean> = { true: true, "1": true, yes: true, on: true, false: false, "0": false, no: false, off: false };
const flag = (value: RawValue): boolean => {
  const b = typeof value === "boolean" ? value : typeof value === "string" ? BOOLEAN_WORDS[value.trim().toLowerCase()] : undefined;
  if (b === undefined) throw new Invalid("must be true or false");
  return b;
};

function choice<const V extends string>(values: readonly V[]) {
  return (value: RawValue): V => {
    if (typeof value === "string" && (values as readonly string[]).includes(value)) return value as V;
    throw new Invalid(`must be one of ${values.join(", ")}`);
  };
}

const DOMAIN_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;
function domainName(example: string) {
  return (value: RawValue): string => {
    const v = text(value).trim().toLowerCase();
    if (v.length > 253 || !v.split(".").every((label) => DOMAIN_LABEL.test(label))) throw new Invalid(`must be a domain name such as ${example}`);
    return v;
  };
}

const bareJids = (value: RawValue): string[] => {
  const list = Array.isArray(value) ? value.map(String) : typeof value === "string" ? value.split(",") : null;
  if (!list) throw new Invalid("must be a comma-separated list of bare JIDs (user@example.org)");
  const jids = list.map((s) => s.trim()).filter((s) => s !== "");
  if (!jids.every((jid) => parseBareJid(jid) !== null)) throw new Invalid("must be a comma-separated list of bare JIDs (user@example.org)");
  if (new Set(jids).size !== jids.length) throw new Invalid("lists a JID twice");
  return jids;
};

/** xmpp://HOST:PORT with an explicit port: a default would be a guess between the client and component ports. */
const xmppUrl = (value: RawValue): string => {
  const v = text(value).trim();
  const m = /^(xmpps?):\/\/([^/:\s@]+)(?::(\d*))?\/?$/.exec(v);
  if (!m) throw new Invalid("must look like xmpp://HOST:PORT (the server's component port, 5347 in Prosody's and ejabberd's examples)");
  if (m[3] === undefined || m[3] === "") throw new Invalid("has no port: write xmpp://HOST:PORT with the server's component port (5347 in Prosody's and ejabberd's examples)");
  const n = Number(m[3]);
  if (!(n >= 1 && n <= 65535)) throw new Invalid("has a port out of range: it must be from 1 to 65535");
  return `${m[1]}://${m[2]}:${n}`;
};

const postgresUrl = (value: RawValue): string => {
  const v = text(value).trim();
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new Invalid("must be a postgres:// URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") throw new Invalid("must be a postgres:// URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)");
  if (url.port !== "" && !(Number(url.port) >= 1 && Number(url.port) <= 65535)) throw new Invalid("has a port out of range: it must be from 1 to 65535");
  return v;
};

/** A listening address for the HTTP endpoint: HOST:PORT or PORT alone (then on 127.0.0.1). */
const listenAddress = (value: RawValue): { host: string; port: number } => {
  const v = typeof value === "number" ? String(value) : text(value).trim();
  const m = /^(?:(\[[0-9a-f:]+\]|[^:\s]+):)?(\d+)$/i.exec(v);
  if (!m) throw new Invalid("must be PORT or HOST:PORT, e.g. 127.0.0.1:9464");
  const p = Number(m[2]);
  if (!(p >= 1 && p <= 65535)) throw new Invalid("has a port out of range: it must be from 1 to 65535");
  return { host: (m[1] ?? "127.0.0.1").replace(/^\[|\]$/g, ""), port: p };
};

function setting<T, S extends Spec<T>>(spec: S, parse: (value: RawValue) => T): S & Setting<T> {
  return { ...spec, parse };
}

// ---------------------------------------------------------------------------------------------
// The settings

export const SETTINGS = {
  xmppService: setting({ env: "DMUC_XMPP_SERVICE", doc: "the server's component port, `xmpp://HOST:PORT`", requiredFor: ["start"] }, xmppUrl),
  domain: setting(
    { env: "DMUC_DOMAIN", doc: "the component's domain, e.g. `conference.example.org`", requiredFor: ["start", "rooms", "occupants", "import"] },
    domainName("conference.example.org"),
  ),
  secret: setting({ env: "DMUC_SECRET", doc: "the component secret (`component_secret` in Prosody)", requiredFor: ["start"], secret: true }, text),
  admins: setting({ env: "DMUC_ADMINS", doc: "comma-separated bare JIDs of service administrators", default: [] as string[], defaultDoc: "none" }, bareJids),
  localDomain: setting(
    { env: "DMUC_LOCAL_DOMAIN", doc: "domain of the users this gateway serves as a DMUC2 replica", defaultDoc: "parent of `DMUC_DOMAIN`" },
    domainName("example.org"),
  ),
  databaseUrl: setting({ env: "DATABASE_URL", doc: "`postgres://user:password@host:port/db`", defaultDoc: "embedded PostgreSQL", secret: true }, postgresUrl),
  dataDir: setting({ env: "DMUC_DATA_DIR", doc: "where the embedded PostgreSQL keeps its cluster and credentials", default: "./data" }, text),
  dbPort: setting({ env: "DMUC_DB_PORT", doc: "port of the embedded PostgreSQL on 127.0.0.1", defaultDoc: "a free port" }, port),
  logLevel: setting({ env: "DMUC_LOG_LEVEL", doc: "`debug`, `info`, `warn`, `error`", default: "info" }, choice(LOG_LEVELS)),
  logFormat: setting({ env: "DMUC_LOG_FORMAT", doc: "`json`, `text`, or `auto` (JSON unless stderr is a terminal)", default: "auto" }, choice(["auto", "json", "text"])),
  xmppDebug: setting({ env: "DMUC_XMPP_DEBUG", doc: "`true` traces every stanza in and out (`@xmpp/debug`)", default: false }, flag),
  maxBodyChars: setting({ env: "DMUC_MAX_BODY_CHARS", doc: "characters (Unicode code points) of all the bodies of a message together", default: 10_000 }, integer(1)),
  maxSubjectChars: setting({ env: "DMUC_MAX_SUBJECT_CHARS", doc: "characters of all the subjects of a message together", default: 1000 }, integer(1)),
  maxStanzaBytes: setting(
    { env: "DMUC_MAX_STANZA_BYTES", doc: "largest stanza accepted, in bytes (Prosody's `c2s_stanza_size_limit`)", default: 256 * 1024 },
    integer(1024),
  ),
  // Capped so that whatever is accepted can be serialised and stored (an occupant is never admitted
  // with a presence that cannot be broadcast).
  maxDepth: setting({ env: "DMUC_MAX_DEPTH", doc: "deepest element nesting accepted (the stanza is level 1; at most 1000)", default: 32 }, integer(4, 1000)),
  maxChildren: setting({ env: "DMUC_MAX_CHILDREN", doc: "most child elements of any one element", default: 1000 }, integer(16)),
  maxHistoryMessages: setting({ env: "DMUC_MAX_HISTORY_MESSAGES", doc: "most history messages a room keeps and sends on entering", default: 100 }, integer(0)),
  rateLimitPerSecond: setting({ env: "DMUC_RATE_LIMIT", doc: "stanzas per second one user (bare JID, all its sessions together) may send to a room", default: 10 }, integer(1)),
  rateLimitBurst: setting({ env: "DMUC_RATE_BURST", doc: "burst allowance above `DMUC_RATE_LIMIT`", default: 30 }, integer(1)),
  joinRate: setting(
    { env: "DMUC_JOIN_RATE", doc: "entries, exits and nick changes per second one session may make in a room (a user's sessions together: twice)", default: 1 },
    integer(1),
  ),
  joinBurst: setting({ env: "DMUC_JOIN_BURST", doc: "burst allowance above `DMUC_JOIN_RATE`", default: 10 }, integer(1)),
  presenceRate: setting(
    { env: "DMUC_PRESENCE_RATE", doc: "presence updates per second one session may have broadcast in a room; faster ones are coalesced", default: 1 },
    integer(1),
  ),
  presenceBurst: setting({ env: "DMUC_PRESENCE_BURST", doc: "burst allowance above `DMUC_PRESENCE_RATE`", default: 5 }, integer(1)),
  roomPresenceRate: setting(
    { env: "DMUC_ROOM_PRESENCE_RATE", doc: "presence broadcasts per second in one room; updates beyond it are coalesced (the latest wins)", default: 50 },
    integer(1),
  ),
  writeQueueLimit: setting(
    {
      env: "DMUC_WRITE_QUEUE_LIMIT",
      doc: "stanzas and rows that may wait on the database (an outage); past it, stanzas that need a write get `wait`/`resource-constraint`",
      default: 50_000,
    },
    integer(100),
  ),
  writeWaitSeconds: setting(
    {
      env: "DMUC_WRITE_WAIT",
      doc: "seconds a stanza may wait for the database (an outage) to store what it changes; past it, it is undone and its sender gets `wait`/`resource-constraint`",
      default: 10,
    },
    integer(1, 3600, "a whole number of seconds"),
  ),
  maxHistoryKb: setting(
    { env: "DMUC_MAX_HISTORY_KB", doc: "kilobytes of history (serialised messages) a room keeps in memory; older messages stay in `history_messages`", default: 256 },
    integer(1),
  ),
  maxRooms: setting(
    { env: "DMUC_MAX_ROOMS", doc: "rooms the service may hold; past it, creating a room gets `not-allowed` (service administrators are exempt)", default: 100_000 },
    integer(1),
  ),
  maxRoomsPerUser: setting(
    { env: "DMUC_MAX_ROOMS_PER_USER", doc: "rooms one user may own (created, or given); past it, creating a room gets `not-allowed` (service administrators are exempt)", default: 100 },
    integer(1),
  ),
  keepaliveSeconds: setting(
    { env: "DMUC_KEEPALIVE", doc: "DMUC2: idle seconds before a link is probed (what a primary offers; replicas take at least 10)", default: 30 },
    integer(1, Number.MAX_SAFE_INTEGER, "a whole number of seconds"),
  ),
  linkTimeoutSeconds: setting(
    { env: "DMUC_LINK_TIMEOUT", doc: "DMUC2: seconds a stanza on a link may go unacknowledged (or a probe unanswered) before the link counts as split", default: 5 },
    integer(1, Number.MAX_SAFE_INTEGER, "a whole number of seconds"),
  ),
  splitPingSeconds: setting(
    { env: "DMUC_SPLIT_PING", doc: "DMUC2: seconds after a split before its first probe (then less and less often, up to 5 minutes)", default: 5 },
    integer(1, Number.MAX_SAFE_INTEGER, "a whole number of seconds"),
  ),
  splitAway: setting({ env: "DMUC_SPLIT_AWAY", doc: "DMUC2: show the users behind a split link as away to the others until it heals", default: true }, flag),
  trustPrimaryEnter: setting(
    { env: "DMUC_TRUST_PRIMARY_ENTER", doc: "DMUC2 replica on a server without `mod_dmuc_replica`: accept `replicate` and ENTER without the directed-presence check", default: false },
    flag,
  ),
  splitEntry: setting(
    { env: "DMUC_SPLIT_ENTRY", doc: "DMUC2 replica: let local users enter a split room; the primary admits or refuses them at netjoin", default: false },
    flag,
  ),
  occupantPingSeconds: setting(
    {
      env: "DMUC_OCCUPANT_PING",
      doc: "seconds between two pings of each occupant's session to find ghosts (every session is also pinged after each reconnection; a DMUC2 replica pings the sessions it serves likewise); `0`: only after reconnecting",
      default: 900,
    },
    integer(0),
  ),
  roomCreation: setting(
    { env: "DMUC_ROOM_CREATION", doc: "who may create rooms: `everyone`, `local` (users of `DMUC_LOCAL_DOMAIN`, and admins), `admin`", default: "everyone" },
    choice(["everyone", "local", "admin"]),
  ),
  roomDefaultPublic: setting({ env: "DMUC_ROOM_DEFAULT_PUBLIC", doc: "new rooms are listed in disco#items (`muc#roomconfig_publicroom`)", default: false }, flag),
  roomDefaultPersistent: setting({ env: "DMUC_ROOM_DEFAULT_PERSISTENT", doc: "new rooms outlive their last occupant (`muc#roomconfig_persistentroom`)", default: false }, flag),
  roomDefaultHistory: setting(
    { env: "DMUC_ROOM_DEFAULT_HISTORY", doc: "messages a new room keeps as history (at most `DMUC_MAX_HISTORY_MESSAGES`)", default: 20 },
    integer(0),
  ),
  roomDefaultWhois: setting(
    { env: "DMUC_ROOM_DEFAULT_WHOIS", doc: "who sees real JIDs in a new room: `moderators` or `anyone`", default: "moderators" },
    choice(["moderators", "anyone"]),
  ),
  tombstoneDays: setting(
    { env: "DMUC_TOMBSTONE_DAYS", doc: "days a destroyed persistent room answers entries with `<gone/>` and its new venue; `0`: none", default: 31 },
    integer(0),
  ),
  httpListen: setting(
    { env: "DMUC_HTTP", doc: "HTTP endpoint for `/metrics`, `/healthz`, `/readyz` and the console: `PORT` (on 127.0.0.1) or `HOST:PORT`", defaultDoc: "off" },
    listenAddress,
  ),
  consoleToken: setting({ env: "DMUC_CONSOLE_TOKEN", doc: "token that opens the operator console on the HTTP endpoint (at least 16 characters)", defaultDoc: "console off", secret: true }, (value) => {
    const token = text(value);
    if (token.length < 16) throw new Invalid("must be at least 16 characters long");
    return token;
  }),
  auditTraffic: setting({ env: "DMUC_AUDIT_TRAFFIC", doc: "audit entries, exits, nick changes and messages too (other events are always audited)", default: true }, flag),
  retentionDays: setting(
    { env: "DMUC_RETENTION_DAYS", doc: "days messages and audit rows are kept, for rooms without their own setting and rooms that are gone; `0` forever", default: 0 },
    integer(0),
  ),
  retentionMinDays: setting({ env: "DMUC_RETENTION_MIN_DAYS", doc: "the shortest retention a room owner may choose, in days", default: 1 }, integer(0)),
  retentionMaxDays: setting(
    { env: "DMUC_RETENTION_MAX_DAYS", doc: "the longest retention a room owner may choose, in days (`0`: no limit, forever allowed)", default: 0 },
    integer(0),
  ),
  pseudonymiseExports: setting({ env: "DMUC_PSEUDONYMISE_EXPORTS", doc: "`audit` and `history` print pseudonyms instead of real JIDs", default: false }, flag),
  importPassword: setting(
    { env: "DMUC_IMPORT_PASSWORD", doc: "`import` only: the password of `--owner` on the old room's server", defaultDoc: "asked on the terminal", secret: true },
    (value) => {
      if (typeof value !== "string" || value === "") throw new Invalid("must not be empty");
      return value;
    },
  ),
} as const;

export type SettingName = keyof typeof SETTINGS;

type ValueOf<S> = S extends Setting<infer T> ? T : never;
type HasDefault<S> = S extends { default: unknown } ? true : S extends { requiredFor: readonly unknown[] } ? true : false;

/**
 * The typed configuration. A setting with a default, or required by some command, is always there
 * when that command reads it; the others may be undefined. localDomain is derived from domain.
 */
export type GatewayConfig = {
  -readonly [K in SettingName]: HasDefault<(typeof SETTINGS)[K]> extends true ? ValueOf<(typeof SETTINGS)[K]> : ValueOf<(typeof SETTINGS)[K]> | undefined;
} & { localDomain: string };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

const entries = () => Object.entries(SETTINGS) as [SettingName, Setting<unknown>][];

/** Every setting at its default (tests and tools that need a config without an environment). */
export function defaultConfig(overrides: Partial<GatewayConfig> = {}): GatewayConfig {
  const config: Record<string, unknown> = {};
  for (const [name, spec] of entries()) config[name] = Array.isArray(spec.default) ? [...spec.default] : spec.default;
  return { ...(config as GatewayConfig), ...overrides };
}

function readConfigFile(path: string): { raw: Map<SettingName, RawValue>; problems: string[] } {
  const raw = new Map<SettingName, RawValue>();
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    return { raw, problems: [`--config ${path}: ${(err as Error).message}`] };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { raw, problems: [`--config ${path}: must hold a JSON object of settings`] };
  }
  const byVariable = new Map(entries().map(([name, spec]) => [spec.env, name]));
  const problems: string[] = [];
  for (const [key, value] of Object.entries(parsed)) {
    const name = byVariable.get(key);
    if (!name) problems.push(`--config ${path}: unknown setting ${key} (the keys are the environment variable names, e.g. DMUC_DOMAIN)`);
    else if (value === null) continue;
    else if (typeof value === "object" && !Array.isArray(value)) problems.push(`--config ${path}: ${key} must be a string, number, boolean or list`);
    else raw.set(name, Array.isArray(value) ? value.map(String) : (value as RawValue));
  }
  return { raw, problems };
}

function parentDomain(domain: unknown): string | undefined {
  if (typeof domain !== "string") return undefined;
  const dot = domain.indexOf(".");
  return dot > 0 && dot < domain.length - 1 ? domain.slice(dot + 1) : undefined;
}

/**
 * Builds the configuration for `command` from a JSON file (keys are the environment variable names)
 * and the environment, which wins over the file. Throws ConfigError naming every bad setting.
 */
export function loadConfig(env: NodeJS.ProcessEnv, configFile?: string, command: CommandName = "start"): GatewayConfig {
  const fromFile = configFile ? readConfigFile(configFile) : { raw: new Map<SettingName, RawValue>(), problems: [] };
  const problems = [...fromFile.problems];
  const config = defaultConfig() as Record<string, unknown>;
  for (const [name, spec] of entries()) {
    const given = env[spec.env] !== undefined && env[spec.env] !== "" ? env[spec.env]! : fromFile.raw.get(name);
    if (given === undefined) {
      if (spec.requiredFor?.includes(command)) problems.push(`${spec.env} is required`);
      continue;
    }
    try {
      config[name] = spec.parse(given);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      problems.push(`${spec.env} ${err.message}${spec.secret ? "" : ` (got ${JSON.stringify(given)})`}`);
    }
  }
  if (config.localDomain === undefined) {
    config.localDomain = parentDomain(config.domain);
    const domainGiven = config.domain !== undefined;
    if (config.localDomain === undefined && domainGiven && command === "start") {
      problems.push(`${SETTINGS.localDomain.env} is required when ${SETTINGS.domain.env} has no parent domain`);
    }
  }
  const { retentionMinDays, retentionMaxDays } = config as { retentionMinDays: number; retentionMaxDays: number };
  if (retentionMaxDays > 0 && retentionMinDays > retentionMaxDays) {
    problems.push(`${SETTINGS.retentionMinDays.env} must not exceed ${SETTINGS.retentionMaxDays.env}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config as GatewayConfig;
}

// ---------------------------------------------------------------------------------------------
// Documentation generated from the table

const plain = (markdown: string) => markdown.replace(/`/g, "");

function shownDefault(spec: Setting<unknown>): string {
  if (spec.defaultDoc !== undefined) return spec.defaultDoc;
  if (spec.requiredFor) return "required";
  return Array.isArray(spec.default) ? spec.default.join(",") : String(spec.default);
}

/** The settings for `--help`: variable, meaning, default. */
export function settingsHelp(): string {
  return entries()
    .map(([, spec]) => {
      const required = spec.requiredFor ? `required for ${spec.requiredFor.join(", ")}` : `default ${plain(shownDefault(spec))}`;
      return `  ${`${spec.env} `.padEnd(26)}${plain(spec.doc)} (${required})`;
    })
    .join("\n");
}

/** The README's settings table (test/unit/config.test.ts checks that the README holds exactly this). */
export function settingsTable(): string {
  const rows = entries().map(([, spec]) => {
    const shown = shownDefault(spec);
    const value = spec.defaultDoc !== undefined || spec.requiredFor ? shown : `\`${shown === "" ? "none" : shown}\``;
    return `| \`${spec.env}\` | ${spec.doc} | ${spec.requiredFor ? `required (${spec.requiredFor.join(", ")})` : value} |`;
  });
  return ["| variable | meaning | default |", "|---|---|---|", ...rows].join("\n");
}
