// `dmuc-gateway history ROOM`: a room's stored messages, also after the room is gone (history is
// kept by the room's JID until retention purges it), streamed in the room's order.
import type { DataSource } from "typeorm";
import { cursorPages } from "./cursor.js";
import { rowWriter, type ExportRow } from "./export-format.js";
import type { ExportOptions } from "./audit-export.js";
import parse from "@xmpp/xml/lib/parse.js";
import { isTombstone } from "../xmpp/retraction.js";

interface HistoryRow {
  sent_at: Date;
  stanza_id: string;
  nick: string;
  sender_jid: string | null;
  occupant_id: string | null;
  body: string | null;
  room_id: string | null;
  /** The stored stanza of a message without a body: a retracted message's tombstone, or a retraction. */
  bodiless: string | null;
}

export const HISTORY_COLUMNS = ["at", "stanza_id", "nick", "sender", "occupant_id", "body", "retracted", "room_exists"] as const;
const TABLE_COLUMNS = ["at", "nick", "sender", "body", "retracted"] as const;

/** Whether a row is a retracted message (XEP-0424 by its author, XEP-0425 by a moderator): its tombstone. */
function retracted(row: HistoryRow): boolean {
  if (row.bodiless === null) return false;
  try {
    return isTombstone(parse(row.bodiless));
  } catch {
    return false;
  }
}

export interface HistoryFilter {
  room: string;
  since?: Date;
  until?: Date;
}

export async function exportHistory(dataSource: DataSource, filter: HistoryFilter, options: Omit<ExportOptions, "follow" | "stopped">): Promise<number> {
  const params: unknown[] = [filter.room];
  const where = ["room_jid = $1"];
  if (filter.since) where.push(`sent_at >= $${params.push(filter.since)}`);
  if (filter.until) where.push(`sent_at < $${params.push(filter.until)}`);
  const sql = `SELECT sent_at, stanza_id, nick, sender_jid, occupant_id, body, room_id, CASE WHEN body IS NULL THEN stanza END AS bodiless
    FROM history_messages WHERE ${where.join(" AND ")} ORDER BY seq`;
  const writer = rowWriter(options.format, options.out, HISTORY_COLUMNS, TABLE_COLUMNS);
  let count = 0;
  for await (const page of cursorPages<HistoryRow>(dataSource, sql, params)) {
    await writer.page(
      page.map(
        (r): ExportRow => ({
          at: r.sent_at.toISOString(),
          stanza_id: r.stanza_id,
          nick: r.nick,
          sender: options.pseudonyms.jid(r.sender_jid),
          occupant_id: r.occupant_id,
          body: r.body,
          retracted: retracted(r),
          room_exists: r.room_id !== null,
        }),
      ),
    );
    count += page.length;
  }
  await writer.end();
  return count;
}
