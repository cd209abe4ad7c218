// The auditor's commands: `audit` (query and export, --follow), `audit verify`, `audit head` and
// `history ROOM`. They parse their own options (src/cli.ts hands them the command line) and read the
// database of a running gateway without disturbing it.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../log.js";
import { openExistingDatabase } from "../db/database.js";
import { parseBareJid, parseJid } from "../xmpp/jid.js";
import { exportAudit, type AuditFilter } from "./audit-export.js";
import { chainHeads, formatHeads, parseAnchors, verifyChains, type Anchor } from "./audit-verify.js";
import { FORMATS, Pseudonymiser, type Format } from "./export-format.js";
import { exportHistory } from "./history.js";

export interface CommandContext {
  config: GatewayConfig;
  log: Logger;
  stdout: NodeJS.WriteStream;
}

/** A parsed command line of one of these commands: run it, or a usage error or help text. */
export type AuditInvocation =
  | { kind: "command"; configFile?: string; run: (context: CommandContext) => Promise<number> }
  | { kind: "help"; text: string }
  | { kind: "usage-error"; message: string };

export const AUDIT_COMMANDS = ["audit", "history"] as const;

export const AUDIT_HELP = `Usage: dmuc-gateway audit [--room JID] [--jid JID] [--kind K ...] [--since T] [--until T]
                          [--format table|json|ndjson|csv] [--follow] [--config FILE]
       dmuc-gateway audit verify [--room JID] [--anchor FILE] [--config FILE]
       dmuc-gateway audit head [--room JID] [--config FILE]

The audit trail (docs/AUDIT.md): who did what in which room, in commit order.
  --room JID      one room (also a room that no longer exists)
  --jid JID       events by or about this bare JID; a full JID matches that session
  --kind K        only these kinds (repeat it, or K1,K2): occupant.entered, message, occupant.kicked...
  --since T, --until T   ISO 8601 time (2026-12-01 or 2026-12-01T10:00Z) or an age (90m, 24h, 7d)
  --format F      table on a terminal, ndjson otherwise; json, csv; exports stream in constant memory
  --follow        then print new events as they are committed, until interrupted

verify recomputes each room's hash chain and reports the first row changed, removed or inserted
(exit 1 when there is one). head prints each room's last row (ROOM SEQ HASH TIME): keep it in a log
outside this database, and give that file to verify --anchor to detect a rewritten or truncated chain.
With DMUC_PSEUDONYMISE_EXPORTS=true real JIDs are shown as pseudonyms.`;

export const HISTORY_HELP = `Usage: dmuc-gateway history ROOM [--since T] [--until T] [--format table|json|ndjson|csv] [--config FILE]

The messages stored for a room (also after the room was destroyed, until retention purges them),
oldest first: time, stanza-id, nick, the sender's real JID, occupant-id, body.
Times as for 'audit'. With DMUC_PSEUDONYMISE_EXPORTS=true real JIDs are shown as pseudonyms.`;

const AGE = /^(\d+)(s|m|h|d)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** An ISO 8601 date or time, or an age before `now` (90m, 24h, 7d). */
export function parseTime(text: string, now: Date): Date | null {
  const age = AGE.exec(text);
  if (age) return new Date(now.getTime() - Number(age[1]) * UNIT_MS[age[2] as keyof typeof UNIT_MS]);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text)) return null;
  const time = Date.parse(text);
  return Number.isNaN(time) ? null : new Date(time);
}

class UsageError extends Error {}

function time(option: string, value: string | undefined, now: Date): Date | undefined {
  if (value === undefined) return undefined;
  const parsed = parseTime(value, now);
  if (!parsed) throw new UsageError(`${option} '${value}' is not an ISO 8601 time or an age such as 24h`);
  return parsed;
}

function format(value: string | undefined, isTty: boolean): Format {
  if (value === undefined) return isTty ? "table" : "ndjson";
  if (!(FORMATS as readonly string[]).includes(value)) throw new UsageError(`--format must be one of ${FORMATS.join(", ")}`);
  return value as Format;
}

function roomJid(option: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const jid = parseBareJid(value);
  if (!jid) throw new UsageError(`${option} '${value}' is not a bare JID (room@service)`);
  return value.toLowerCase();
}

async function withDatabase<T>(context: CommandContext, work: (db: Awaited<ReturnType<typeof openExistingDatabase>>) => Promise<T>): Promise<T> {
  // `dmuc-gateway audit | head`: the reader went away, which ends the export, not in a stack trace.
  context.stdout.once("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  });
  const database = await openExistingDatabase(context.config, context.log);
  try {
    return await work(database);
  } finally {
    await database.close();
  }
}

const pseudonymiser = (config: GatewayConfig) => new Pseudonymiser(config.pseudonymiseExports ? config.secret : null);

/** Resolves on the first SIGINT or SIGTERM (for --follow). */
function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
}

/** Parses `audit ...` or `history ...` (argv starts with the command); undefined for other commands. */
export function parseAuditCommandLine(argv: string[], now = new Date()): AuditInvocation | undefined {
  const [command, ...rest] = argv;
  if (command !== "audit" && command !== "history") return undefined;
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: "string" },
        help: { type: "boolean", short: "h" },
        room: { type: "string" },
        jid: { type: "string" },
        kind: { type: "string", multiple: true },
        since: { type: "string" },
        until: { type: "string" },
        format: { type: "string" },
        follow: { type: "boolean" },
        anchor: { type: "string" },
      },
    });
    const configFile = values.config;
    if (values.format !== undefined) format(values.format, false);
    if (command === "history") {
      if (values.help) return { kind: "help", text: HISTORY_HELP };
      const [room, extra] = positionals;
      if (room === undefined) throw new UsageError("history needs the room's JID: dmuc-gateway history ROOM");
      if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`);
      for (const option of ["jid", "kind", "follow", "room", "anchor"] as const) if (values[option] !== undefined) throw new UsageError(`--${option} does not go with history`);
      const filter = { room: roomJid("ROOM", room)!, since: time("--since", values.since, now), until: time("--until", values.until, now) };
      return {
        kind: "command",
        configFile,
        run: async (context) => {
          const fmt = format(values.format, context.stdout.isTTY);
          await withDatabase(context, (db) => exportHistory(db.dataSource, filter, { format: fmt, out: context.stdout, pseudonyms: pseudonymiser(context.config) }));
          return 0;
        },
      };
    }

    if (values.help) return { kind: "help", text: AUDIT_HELP };
    const [sub, extra] = positionals;
    if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`);
    const room = roomJid("--room", values.room);
    if (sub === "verify" || sub === "head") {
      for (const option of ["jid", "kind", "since", "until", "format", "follow"] as const) if (values[option] !== undefined) throw new UsageError(`--${option} does not go with audit ${sub}`);
      if (sub === "head" && values.anchor !== undefined) throw new UsageError("--anchor goes with audit verify");
      let anchors: Map<string, Anchor> | undefined;
      if (values.anchor !== undefined) {
        try {
          anchors = parseAnchors(readFileSync(values.anchor, "utf8"));
        } catch (err) {
          throw new UsageError(`--anchor ${values.anchor}: ${(err as Error).message}`);
        }
      }
      return {
        kind: "command",
        configFile,
        run: (context) => (sub === "head" ? printHeads(context, room) : verify(context, room, anchors)),
      };
    }
    if (sub !== undefined) throw new UsageError(`unknown audit command '${sub}' (verify, head, or none to query)`);
    if (values.anchor !== undefined) throw new UsageError("--anchor goes with audit verify");
    if (values.jid !== undefined && !parseJid(values.jid)) throw new UsageError(`--jid '${values.jid}' is not a JID`);
    const filter: AuditFilter = {
      room,
      jid: values.jid,
      kinds: (values.kind ?? []).flatMap((k) => k.split(",")).map((k) => k.trim()).filter((k) => k !== ""),
      since: time("--since", values.since, now),
      until: time("--until", values.until, now),
    };
    if (values.follow && values.format === "json") throw new UsageError("--follow cannot write one JSON document; use --format ndjson");
    return {
      kind: "command",
      configFile,
      run: async (context) => {
        const fmt = format(values.format, context.stdout.isTTY);
        await withDatabase(context, (db) =>
          exportAudit(db.dataSource, filter, { format: fmt, out: context.stdout, pseudonyms: pseudonymiser(context.config), follow: values.follow, stopped: values.follow ? interrupted() : undefined }),
        );
        return 0;
      },
    };
  } catch (err) {
    const message = err instanceof UsageError ? err.message : (err as Error).message;
    return { kind: "usage-error", message: `${message}\nRun 'dmuc-gateway ${command} --help' for usage.` };
  }
}

async function printHeads(context: CommandContext, room: string | undefined): Promise<number> {
  const heads = await withDatabase(context, (db) => chainHeads(db.dataSource, room));
  context.stdout.write(formatHeads(heads));
  return 0;
}

async function verify(context: CommandContext, room: string | undefined, anchors: Map<string, Anchor> | undefined): Promise<number> {
  const report = await withDatabase(context, (db) => verifyChains(db.dataSource, room, anchors));
  for (const p of report.problems) context.stdout.write(`${p.room}: ${p.message}\n`);
  const unchained = report.unchained > 0 ? `, ${report.unchained} rows from before the chain not covered` : "";
  const verdict = report.problems.length === 0 ? "ok" : `${report.problems.length} room(s) with a broken chain`;
  context.stdout.write(`${verdict}: ${report.rows} rows in ${report.rooms} chain(s) checked${unchained}\n`);
  return report.problems.length === 0 ? 0 : 1;
}
