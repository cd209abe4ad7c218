// The console's audit search: the query parameters of /console/audit (room, JID, kinds, time range,
// page) validated with class-validator into the same AuditFilter the `dmuc-gateway audit` command
// builds, and one page of the trail, newest first, from the same query (src/commands/audit-export.ts).
//
// class-validator fits here: the parameters arrive as untrusted strings from a browser and each has a
// fixed rule; its messages are shown on the page beside the form. (The settings do not use it: see
// src/config.ts.)
import { IsNumberString, IsOptional, Matches, MaxLength, Validate, ValidatorConstraint, validateSync, type ValidationArguments, type ValidatorConstraintInterface } from "class-validator";
import type { DataSource } from "typeorm";
import { auditPageQuery, exported, type AuditFilter, type AuditRow } from "../commands/audit-export.js";
import { parseTime } from "../commands/audit.js";
import type { ExportRow, Pseudonymiser } from "../commands/export-format.js";
import { parseBareJid, parseJid } from "../xmpp/jid.js";

export const AUDIT_PAGE_ROWS = 50;
const MAX_PAGE_ROWS = 500;
const TEXT_MAX = 3071;

@ValidatorConstraint({ name: "bareJid" })
class IsBareJid implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    return typeof value === "string" && parseBareJid(value) !== null;
  }
  defaultMessage(): string {
    return "room must be a room's bare JID (room@service)";
  }
}

@ValidatorConstraint({ name: "jid" })
class IsJid implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    // As `audit --jid`: a user, a session, or a server or component (DMUC2 peers act in link events).
    return typeof value === "string" && parseJid(value) !== null;
  }
  defaultMessage(): string {
    return "jid must be a JID: user@server, user@server/resource for one session, or a server";
  }
}

@ValidatorConstraint({ name: "auditTime" })
class IsAuditTime implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    return typeof value === "string" && parseTime(value, new Date()) !== null;
  }
  defaultMessage(args?: ValidationArguments): string {
    return `${args?.property ?? "time"} must be an ISO 8601 time (2026-12-01 or 2026-12-01T10:00Z) or an age such as 90m, 24h, 7d`;
  }
}

/** The search form's parameters, as typed in (empty fields are absent). */
export class AuditSearchParams {
  @IsOptional()
  @MaxLength(TEXT_MAX)
  @Validate(IsBareJid)
  room?: string;

  @IsOptional()
  @MaxLength(TEXT_MAX)
  @Validate(IsJid)
  jid?: string;

  @IsOptional()
  @MaxLength(TEXT_MAX)
  @Matches(/^\s*[a-z][a-z0-9_.-]*(\s*,\s*[a-z][a-z0-9_.-]*)*\s*$/, { message: "kind must be event kinds such as occupant.entered, separated by commas" })
  kind?: string;

  @IsOptional()
  @Validate(IsAuditTime)
  since?: string;

  @IsOptional()
  @Validate(IsAuditTime)
  until?: string;

  /** Continue with the events older than this id (the page's last). */
  @IsOptional()
  @MaxLength(19)
  @IsNumberString({ no_symbols: true }, { message: "before must be an event id" })
  before?: string;

  @IsOptional()
  @Matches(/^[1-9]\d{0,2}$/, { message: `rows must be a number from 1 to ${MAX_PAGE_ROWS}` })
  rows?: string;
}

const FIELDS = ["room", "jid", "kind", "since", "until", "before", "rows"] as const;

export interface AuditSearch {
  /** The parameters as given, to fill the form again. */
  params: AuditSearchParams;
  filter: AuditFilter;
  before?: string;
  rows: number;
}

/** The search the query parameters ask for, or what is wrong with them (one message per problem). */
export function parseAuditSearch(query: URLSearchParams, now: Date): { search: AuditSearch } | { params: AuditSearchParams; errors: string[] } {
  const params = new AuditSearchParams();
  for (const field of FIELDS) {
    const value = query.get(field)?.trim();
    if (value) params[field] = value;
  }
  const errors = validateSync(params).flatMap((e) => Object.values(e.constraints ?? {}));
  if (errors.length > 0) return { params, errors };
  const rows = Number(params.rows ?? AUDIT_PAGE_ROWS);
  if (rows > MAX_PAGE_ROWS) return { params, errors: [`rows must be a number from 1 to ${MAX_PAGE_ROWS}`] };
  const since = params.since === undefined ? undefined : parseTime(params.since, now)!;
  const until = params.until === undefined ? undefined : parseTime(params.until, now)!;
  if (since && until && since >= until) return { params, errors: ["since must be before until"] };
  const filter: AuditFilter = {
    // As the command line: room JIDs are compared in lower case, a JID as stored.
    ...(params.room !== undefined && { room: params.room.toLowerCase() }),
    ...(params.jid !== undefined && { jid: params.jid }),
    kinds: params.kind === undefined ? [] : params.kind.split(",").map((k) => k.trim()),
    ...(since && { since }),
    ...(until && { until }),
  };
  return { search: { params, filter, ...(params.before !== undefined && { before: params.before }), rows } };
}

export interface AuditPage {
  events: ExportRow[];
  /** The id to continue with (older events), or null on the last page. */
  next: string | null;
}

/** One page of matching events, newest first. */
export async function searchAudit(dataSource: DataSource, search: AuditSearch, pseudonyms: Pseudonymiser): Promise<AuditPage> {
  const { sql, params } = auditPageQuery(search.filter, search.before, search.rows + 1);
  const rows: AuditRow[] = await dataSource.query(sql, params);
  const page = rows.slice(0, search.rows);
  return { events: page.map((row) => exported(row, pseudonyms, false)), next: rows.length > search.rows ? page.at(-1)!.id : null };
}
