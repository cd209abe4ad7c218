// `dmuc-gateway audit`: the audit trail filtered by room, JID, kind and time, streamed through a
// cursor in id order (the order the events were committed), then, with --follow, new events as
// they are committed.
import type { DataSource } from "typeorm";
import type { Writable } from "node:stream";
import { canonicalJson } from "../core/audit-chain.js";
import { cursorPages } from "./cursor.js";
import { rowWriter, type ExportRow, type Format, type Pseudonymiser } from "./export-format.js";

export interface AuditFilter {
  room?: string;
  /** A bare JID matches who acted and whom it was about; a full JID matches the session in the details. */
  jid?: string;
  kinds: string[];
  since?: Date;
  until?: Date;
}

export interface AuditRow {
  id: string;
  at: Date;
  room_jid: string | null;
  kind: string;
  actor_jid: string | null;
  subject_jid: string | null;
  details: Record<string, unknown>;
  seq: string | null;
  hash: string | null;
}

export const AUDIT_COLUMNS = ["id", "at", "room", "kind", "actor", "subject", "details", "seq", "hash"] as const;
const TABLE_COLUMNS = ["at", "room", "kind", "actor", "subject", "details"] as const;

/** The conditions and parameters of a filter. */
function auditConditions(filter: AuditFilter): { where: string[]; params: unknown[]; param: (value: unknown) => string } {
  const where: string[] = [];
  const params: unknown[] = [];
  const param = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  if (filter.room) where.push(`room_jid = ${param(filter.room)}`);
  if (filter.jid) {
    const p = param(filter.jid);
    where.push(filter.jid.includes("/") ? `details->>'jid' = ${p}` : `(actor_jid = ${p} OR subject_jid = ${p})`);
  }
  if (filter.kinds.length > 0) where.push(`kind = ANY(${param(filter.kinds)}::text[])`);
  if (filter.since) where.push(`at >= ${param(filter.since)}`);
  if (filter.until) where.push(`at < ${param(filter.until)}`);
  return { where, params, param };
}

const SELECT = "SELECT id, at, room_jid, kind, actor_jid, subject_jid, details, seq, hash FROM audit_events";
const whereClause = (where: string[]) => (where.length > 0 ? `WHERE ${where.join(" AND ")}` : "");

/** The WHERE clause and parameters of a filter; `afterId` continues after a row already shown. */
export function auditQuery(filter: AuditFilter, afterId?: string, limit?: number): { sql: string; params: unknown[] } {
  const { where, params, param } = auditConditions(filter);
  if (afterId !== undefined) where.push(`id > ${param(afterId)}`);
  const sql = `${SELECT}
    ${whereClause(where)} ORDER BY id${limit ? ` LIMIT ${limit}` : ""}`;
  return { sql, params };
}

/** One page of the same filter, newest first (the console): `beforeId` continues with older rows. */
export function auditPageQuery(filter: AuditFilter, beforeId: string | undefined, limit: number): { sql: string; params: unknown[] } {
  const { where, params, param } = auditConditions(filter);
  if (beforeId !== undefined) where.push(`id < ${param(beforeId)}`);
  return { sql: `${SELECT} ${whereClause(where)} ORDER BY id DESC LIMIT ${param(limit)}`, params };
}

export function exported(row: AuditRow, pseudonyms: Pseudonymiser, table: boolean): ExportRow {
  const details = pseudonyms.details(row.details);
  return {
    id: Number(row.id),
    at: row.at.toISOString(),
    room: row.room_jid,
    kind: row.kind,
    actor: pseudonyms.jid(row.actor_jid),
    subject: pseudonyms.jid(row.subject_jid),
    // Keys sorted (as in the hash chain's canonical form), not in jsonb's storage order.
    details: table ? canonicalJson(details) : details,
    seq: row.seq === null ? null : Number(row.seq),
    hash: row.hash,
  };
}

export interface ExportOptions {
  format: Format;
  out: Writable;
  pseudonyms: Pseudonymiser;
  /** With follow: stop when this resolves (SIGINT). */
  stopped?: Promise<void>;
  follow?: boolean;
  /** How often --follow looks for new events. */
  pollMs?: number;
}

/** Streams the matching events; returns how many were written. */
export async function exportAudit(dataSource: DataSource, filter: AuditFilter, options: ExportOptions): Promise<number> {
  const table = options.format === "table";
  const writer = rowWriter(options.format, options.out, AUDIT_COLUMNS, TABLE_COLUMNS);
  let count = 0;
  let lastId: string | undefined;
  const { sql, params } = auditQuery(filter);
  for await (const page of cursorPages<AuditRow>(dataSource, sql, params)) {
    await writer.page(page.map((r) => exported(r, options.pseudonyms, table)));
    count += page.length;
    lastId = page.at(-1)!.id;
  }
  if (!options.follow) {
    await writer.end();
    return count;
  }
  // Tail: the gateway commits one batch at a time, so ids appear in order.
  let stop = false;
  void options.stopped?.then(() => (stop = true));
  // Nothing matched yet: every matching event from now on is new.
  lastId ??= "0";
  while (!stop) {
    const next = auditQuery(filter, lastId, 1000);
    const rows: AuditRow[] = await dataSource.query(next.sql, next.params);
    if (rows.length > 0) {
      await writer.page(rows.map((r) => exported(r, options.pseudonyms, table)));
      count += rows.length;
      lastId = rows.at(-1)!.id;
      continue;
    }
    await Promise.race([new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1000)), options.stopped]);
  }
  await writer.end();
  return count;
}
