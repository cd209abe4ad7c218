// Gateway configuration: read from the environment (and optionally a JSON file), converted to typed
// values, then validated with class-validator before anything connects. Every bad setting is reported
// at once, named by the environment variable an operator would set.
import "reflect-metadata";
import { readFileSync } from "node:fs";
import {
  ArrayUnique,
  IsBoolean,
  IsFQDN,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
  ValidateBy,
  validateSync,
  type ValidationError,
  type ValidationOptions,
} from "class-validator";
import { LOG_LEVELS, type LogLevel } from "./log.js";
import { parseBareJid } from "./xmpp/jid.js";

const DOMAIN = { require_tld: false, allow_underscores: false } as const;

function IsBareJidList(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: "isBareJidList",
      validator: {
        validate: (value: unknown) => Array.isArray(value) && value.every((v) => typeof v === "string" && parseBareJid(v) !== null),
        defaultMessage: () => "must be a comma-separated list of bare JIDs (user@example.org)",
      },
    },
    options,
  );
}

/** Every setting, with the environment variable it comes from. */
export const SETTINGS = {
  xmppService: "DMUC_XMPP_SERVICE",
  domain: "DMUC_DOMAIN",
  secret: "DMUC_SECRET",
  admins: "DMUC_ADMINS",
  localDomain: "DMUC_LOCAL_DOMAIN",
  databaseUrl: "DATABASE_URL",
  dataDir: "DMUC_DATA_DIR",
  dbPort: "DMUC_DB_PORT",
  logLevel: "DMUC_LOG_LEVEL",
  logFormat: "DMUC_LOG_FORMAT",
  xmppDebug: "DMUC_XMPP_DEBUG",
  maxBodyChars: "DMUC_MAX_BODY_CHARS",
  maxHistoryMessages: "DMUC_MAX_HISTORY_MESSAGES",
  rateLimitPerSecond: "DMUC_RATE_LIMIT",
  rateLimitBurst: "DMUC_RATE_BURST",
  keepaliveSeconds: "DMUC_KEEPALIVE",
  linkTimeoutSeconds: "DMUC_LINK_TIMEOUT",
  splitPingSeconds: "DMUC_SPLIT_PING",
  splitAway: "DMUC_SPLIT_AWAY",
  trustPrimaryEnter: "DMUC_TRUST_PRIMARY_ENTER",
  splitEntry: "DMUC_SPLIT_ENTRY",
  occupantPingSeconds: "DMUC_OCCUPANT_PING",
  roomCreation: "DMUC_ROOM_CREATION",
  roomDefaultPublic: "DMUC_ROOM_DEFAULT_PUBLIC",
  roomDefaultPersistent: "DMUC_ROOM_DEFAULT_PERSISTENT",
  roomDefaultHistory: "DMUC_ROOM_DEFAULT_HISTORY",
  roomDefaultWhois: "DMUC_ROOM_DEFAULT_WHOIS",
  tombstoneDays: "DMUC_TOMBSTONE_DAYS",
} as const satisfies Record<string, string>;

export type SettingName = keyof typeof SETTINGS;

export class GatewayConfig {
  @Matches(/^xmpps?:\/\/[^/:\s]+(:\d{1,5})?$/, { message: "must look like xmpp://HOST:PORT (the server's component port)" })
  xmppService!: string;

  @IsFQDN(DOMAIN, { message: "must be a domain name such as conference.example.org" })
  domain!: string;

  @IsString()
  @IsNotEmpty({ message: "must not be empty" })
  secret!: string;

  @IsBareJidList()
  @ArrayUnique({ message: "lists a JID twice" })
  admins: string[] = [];

  /** The domain of the users this gateway serves as a DMUC2 replica; the parent of `domain` by default. */
  @IsFQDN(DOMAIN, { message: "must be a domain name such as example.org" })
  localDomain!: string;

  @IsOptional()
  @Matches(/^postgres(ql)?:\/\/\S+$/, { message: "must be a postgres:// URL" })
  databaseUrl?: string;

  @IsString()
  @IsNotEmpty({ message: "must not be empty" })
  dataDir = "./data";

  @IsOptional()
  @IsInt({ message: "must be a port number" })
  @Min(1, { message: "must be a port number from 1 to 65535" })
  @Max(65535, { message: "must be a port number from 1 to 65535" })
  dbPort?: number;

  @IsIn(LOG_LEVELS, { message: `must be one of ${LOG_LEVELS.join(", ")}` })
  logLevel: LogLevel = "info";

  @IsIn(["auto", "json", "text"], { message: "must be auto, json or text" })
  logFormat: "auto" | "json" | "text" = "auto";

  @IsBoolean({ message: "must be true or false" })
  xmppDebug = false;

  @IsInt({ message: "must be a whole number" })
  @Min(1, { message: "must be at least 1" })
  maxBodyChars = 10_000;

  @IsInt({ message: "must be a whole number" })
  @Min(0, { message: "must be at least 0" })
  maxHistoryMessages = 100;

  @IsInt({ message: "must be a whole number" })
  @Min(1, { message: "must be at least 1" })
  rateLimitPerSecond = 10;

  @IsInt({ message: "must be a whole number" })
  @Min(1, { message: "must be at least 1" })
  rateLimitBurst = 30;

  /** DMUC2: idle seconds after which a link is pinged (what a primary offers its replicas). */
  @IsInt({ message: "must be a whole number of seconds" })
  @Min(1, { message: "must be at least 1" })
  keepaliveSeconds = 60;

  /** DMUC2: seconds without an answer after which a link counts as split. */
  @IsInt({ message: "must be a whole number of seconds" })
  @Min(1, { message: "must be at least 1" })
  linkTimeoutSeconds = 30;

  /** DMUC2: how often a split link is pinged to see it come back. */
  @IsInt({ message: "must be a whole number of seconds" })
  @Min(1, { message: "must be at least 1" })
  splitPingSeconds = 5;

  /** DMUC2: show the occupants behind a split link as away to the others until netjoin. */
  @IsBoolean({ message: "must be true or false" })
  splitAway = true;

  /** DMUC2 replica on a server without mod_dmuc_replica: accept ENTER without the directed-presence check. */
  @IsBoolean({ message: "must be true or false" })
  trustPrimaryEnter = false;

  /** DMUC2 replica: let local users enter a split room; the primary decides at netjoin (the XEP's DANGER). */
  @IsBoolean({ message: "must be true or false" })
  splitEntry = false;

  /** Seconds between two pings of each occupant's session to find ghosts; 0: only after (re)connecting. */
  @IsInt({ message: "must be a whole number of seconds" })
  @Min(0, { message: "must be at least 0" })
  occupantPingSeconds = 900;

  /** Who may create rooms: service admins, users of the local domain (and admins), or anyone. */
  @IsIn(["admin", "local", "everyone"], { message: "must be admin, local or everyone" })
  roomCreation: "admin" | "local" | "everyone" = "everyone";

  /** New rooms are listed in disco#items (muc#roomconfig_publicroom). */
  @IsBoolean({ message: "must be true or false" })
  roomDefaultPublic = false;

  /** New rooms outlive their last occupant (muc#roomconfig_persistentroom). */
  @IsBoolean({ message: "must be true or false" })
  roomDefaultPersistent = false;

  /** Messages a new room keeps as history (muc#roomconfig_historylength), at most DMUC_MAX_HISTORY_MESSAGES. */
  @IsInt({ message: "must be a whole number" })
  @Min(0, { message: "must be at least 0" })
  roomDefaultHistory = 20;

  /** Who sees real JIDs in a new room (muc#roomconfig_whois). */
  @IsIn(["moderators", "anyone"], { message: "must be moderators or anyone" })
  roomDefaultWhois: "moderators" | "anyone" = "moderators";

  /** Days a destroyed persistent room answers entries with <gone/> and its new venue; 0: no tombstones. */
  @IsInt({ message: "must be a whole number of days" })
  @Min(0, { message: "must be at least 0" })
  tombstoneDays = 31;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

type RawValue = string | number | boolean | string[] | undefined;
type RawSettings = Partial<Record<SettingName, RawValue>>;

const BOOLEAN_WORDS: Record<string, boolean> = { true: true, "1": true, yes: true, on: true, false: false, "0": false, no: false, off: false };

function toNumber(value: RawValue): unknown {
  if (typeof value === "string" && /^\s*-?\d+\s*$/.test(value)) return Number(value);
  return value;
}

function toBoolean(value: RawValue): unknown {
  if (typeof value === "string") return BOOLEAN_WORDS[value.trim().toLowerCase()] ?? value;
  return value;
}

function toList(value: RawValue): unknown {
  if (typeof value === "string") return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  return value;
}

const CONVERT: Partial<Record<SettingName, (value: RawValue) => unknown>> = {
  admins: toList,
  dbPort: toNumber,
  xmppDebug: toBoolean,
  maxBodyChars: toNumber,
  maxHistoryMessages: toNumber,
  rateLimitPerSecond: toNumber,
  rateLimitBurst: toNumber,
  keepaliveSeconds: toNumber,
  linkTimeoutSeconds: toNumber,
  splitPingSeconds: toNumber,
  splitAway: toBoolean,
  trustPrimaryEnter: toBoolean,
  splitEntry: toBoolean,
  occupantPingSeconds: toNumber,
  roomDefaultPublic: toBoolean,
  roomDefaultPersistent: toBoolean,
  roomDefaultHistory: toNumber,
  tombstoneDays: toNumber,
};

function readConfigFile(path: string): { raw: RawSettings; problems: string[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    return { raw: {}, problems: [`--config ${path}: ${(err as Error).message}`] };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { raw: {}, problems: [`--config ${path}: must hold a JSON object of settings`] };
  }
  const byVariable = new Map(Object.entries(SETTINGS).map(([name, variable]) => [variable, name as SettingName]));
  const raw: RawSettings = {};
  const problems: string[] = [];
  for (const [key, value] of Object.entries(parsed)) {
    const name = byVariable.get(key as (typeof SETTINGS)[SettingName]);
    if (!name) problems.push(`--config ${path}: unknown setting ${key}`);
    else if (value !== null) raw[name] = Array.isArray(value) ? value.map(String) : (value as RawValue);
  }
  return { raw, problems };
}

function parentDomain(domain: unknown): string | undefined {
  if (typeof domain !== "string") return undefined;
  const dot = domain.indexOf(".");
  return dot > 0 && dot < domain.length - 1 ? domain.slice(dot + 1) : undefined;
}

function describe(errors: ValidationError[], raw: RawSettings): string[] {
  return errors.map((error) => {
    const name = error.property as SettingName;
    const variable = SETTINGS[name] ?? error.property;
    const given = raw[name];
    const messages = Object.values(error.constraints ?? {});
    if (name === "localDomain" && given === undefined) return `${variable} is required when ${SETTINGS.domain} has no parent domain`;
    if (given === undefined || given === "") return `${variable} is required`;
    const shown = name === "secret" || name === "databaseUrl" ? "" : ` (got ${JSON.stringify(given)})`;
    return `${variable} ${messages[0] ?? "is invalid"}${shown}`;
  });
}

/**
 * Builds the configuration from a JSON file (keys are the environment variable names) and the
 * environment, which wins over the file. Throws ConfigError naming every bad setting.
 */
export function loadConfig(env: NodeJS.ProcessEnv, configFile?: string): GatewayConfig {
  const fromFile = configFile ? readConfigFile(configFile) : { raw: {}, problems: [] };
  const raw: RawSettings = { ...fromFile.raw };
  for (const [name, variable] of Object.entries(SETTINGS) as [SettingName, string][]) {
    const value = env[variable];
    if (value !== undefined && value !== "") raw[name] = value;
  }

  const config = new GatewayConfig();
  const target = config as unknown as Record<string, unknown>;
  for (const [name, value] of Object.entries(raw) as [SettingName, RawValue][]) {
    target[name] = CONVERT[name]?.(value) ?? value;
  }
  if (raw.localDomain === undefined) target.localDomain = parentDomain(config.domain);

  const errors = validateSync(config);
  // Without DMUC_LOCAL_DOMAIN its default comes from DMUC_DOMAIN: when that is bad, report only it.
  const domainIsBad = errors.some((e) => e.property === "domain");
  const reported = errors.filter((e) => !(e.property === "localDomain" && raw.localDomain === undefined && domainIsBad));
  const problems = [...fromFile.problems, ...describe(reported, raw)];
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
