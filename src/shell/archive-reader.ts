// Runs the core's archive queries (the `archive-read` effect) against history_messages, with keyset
// paging in the room's order (archive-order.ts): a page is one indexed range scan, whatever its depth.
import type { DataSource } from "typeorm";
import parse from "@xmpp/xml/lib/parse.js";
import type { ArchivedMessage, ArchiveQuery, ArchiveReadResult } from "../core/archive/query.js";
import type { Logger } from "../log.js";
import { orderBy, orderColumns, orderKey } from "./archive-order.js";

interface ArchiveRow {
  stanza_id: string;
  sent_at: Date;
  nick: string;
  sender_jid: string | null;
  stanza: string;
}

export class ArchiveReader {
  constructor(
    private readonly dataSource: DataSource,
    private readonly log: Logger,
  ) {}

  async read(query: ArchiveQuery): Promise<ArchiveReadResult> {
    const params: unknown[] = [query.roomJid];
    const param = (value: unknown) => {
      params.push(value);
      return `$${params.length}`;
    };
    // Filters that define the result set (and its RSM count)...
    const where = [`h.room_id = (SELECT id FROM rooms WHERE jid = $1)`];
    if (!query.includeUnarchived) where.push(`h.archived`);
    if (query.start) where.push(`h.sent_at >= ${param(query.start)}`);
    if (query.end) where.push(`h.sent_at <= ${param(query.end)}`);
    if (query.ids) where.push(`h.stanza_id = ANY(${param(query.ids)}::text[])`);
    if (query.idOrOriginId !== undefined) {
      const id = param(query.idOrOriginId);
      where.push(`(h.stanza_id = ${id} OR h.origin_id = ${id})`);
    }
    const { sender } = query;
    if (sender.kind === "nick") where.push(`h.nick = ${param(sender.nick)}`);
    if (sender.kind === "real-jid") {
      where.push(sender.bare ? `split_part(h.sender_jid, '/', 1) = ${param(sender.jid)}` : `h.sender_jid = ${param(sender.jid)}`);
    }
    const countSql = `SELECT count(*)::int AS n FROM history_messages h WHERE ${where.join(" AND ")}`;
    const countParams = [...params];

    // ...and the page's position in it.
    const page = [...where];
    for (const [id, op] of [[query.afterId, ">"], [query.beforeId, "<"]] as const) {
      if (id === undefined) continue;
      const known: unknown[] = await this.dataSource.query(
        `SELECT 1 FROM history_messages WHERE room_id = (SELECT id FROM rooms WHERE jid = $1) AND stanza_id = $2 AND (archived OR $3)`,
        [query.roomJid, id, query.includeUnarchived === true],
      );
      if (known.length === 0) return { ok: false, reason: "unknown-id" };
      page.push(`${orderKey("h")} ${op} (SELECT ${orderColumns("b")} FROM history_messages b WHERE b.room_id = h.room_id AND b.stanza_id = ${param(id)})`);
    }
    const direction = query.from === "oldest" ? "ASC" : "DESC";
    const rows: ArchiveRow[] = await this.dataSource.query(
      `SELECT h.stanza_id, h.sent_at, h.nick, h.sender_jid, h.stanza FROM history_messages h
       WHERE ${page.join(" AND ")} ORDER BY ${orderBy("h", direction)} LIMIT ${param(query.max + 1)}`,
      params,
    );
    const [{ n: count }] = (await this.dataSource.query(countSql, countParams)) as [{ n: number }];
    const complete = rows.length <= query.max;
    const pageRows = rows.slice(0, query.max);
    if (direction === "DESC") pageRows.reverse();
    const items: ArchivedMessage[] = [];
    for (const row of pageRows) {
      try {
        items.push({ archiveId: row.stanza_id, at: row.sent_at, nick: row.nick, senderJid: row.sender_jid, stanza: parse(row.stanza) });
      } catch (err) {
        this.log.warn("archive.unparsable_row", { room: query.roomJid, stanzaId: row.stanza_id, error: err });
      }
    }
    return { ok: true, items, complete, count };
  }
}
