// Retention instead of deletion: history and audit rows outlive their rooms and are purged when
// older than the room's retention (the room's own setting within the operator's limits, or the
// service's; a room that no longer exists has the service's). Each purge is audited in the room's
// chain, with where the chain now starts, so that `audit verify` still holds (docs/AUDIT.md).
import type { DataSource } from "typeorm";
import type { RetentionLimits } from "../core/service.js";
import type { ChainStart } from "../core/audit-chain.js";
import type { RoomStore } from "./room-store.js";
import { effectiveRetentionDays, retentionCutoff } from "../core/room/retention.js";

export interface PurgeSummary {
  rooms: number;
  history: number;
  audit: number;
}

/** Every room JID with stored history or audit rows, by a skip scan of each table's room index. */
async function roomsWithRows(dataSource: DataSource): Promise<string[]> {
  const distinct = (table: string, column: string) => `
    WITH RECURSIVE r(jid) AS (
      (SELECT ${column} FROM ${table} WHERE ${column} IS NOT NULL ORDER BY ${column} LIMIT 1)
      UNION ALL
      SELECT (SELECT t.${column} FROM ${table} t WHERE t.${column} > r.jid ORDER BY t.${column} LIMIT 1) FROM r WHERE r.jid IS NOT NULL
    ) SELECT jid FROM r WHERE jid IS NOT NULL`;
  const jids = new Set<string>();
  for (const table of ["history_messages", "audit_events"]) {
    for (const row of (await dataSource.query(distinct(table, "room_jid"))) as { jid: string }[]) jids.add(row.jid);
  }
  return [...jids];
}

/**
 * Deletes the rows older than each room's retention. One transaction per room, taken between
 * batches of the group commit, so that a purge never holds up the rooms for long.
 */
export async function purgeExpired(dataSource: DataSource, store: RoomStore, limits: RetentionLimits, now: Date): Promise<PurgeSummary> {
  const summary: PurgeSummary = { rooms: 0, history: 0, audit: 0 };
  if (limits.defaultDays === 0 && limits.maxDays === 0) {
    // Forever by default, and owners may not choose a limit of their own above none: only rooms
    // that chose a retention have anything to purge.
    const chosen: { n: string }[] = await dataSource.query(`SELECT count(*) AS n FROM rooms WHERE (config->>'retentionDays')::int > 0`);
    if (Number(chosen[0]!.n) === 0) return summary;
  }
  const configured = new Map<string, unknown>(
    ((await dataSource.query(`SELECT jid, config->'retentionDays' AS days FROM rooms`)) as { jid: string; days: unknown }[]).map((r) => [r.jid, r.days]),
  );
  for (const roomJid of await roomsWithRows(dataSource)) {
    const days = effectiveRetentionDays(limits, configured.get(roomJid));
    const cutoff = retentionCutoff(limits, configured.get(roomJid), now);
    if (cutoff === null) continue;
    const purged = await store.chains.exclusive(() => purgeRoom(dataSource, store, roomJid, cutoff, days));
    if (purged.history + purged.audit > 0) summary.rooms++;
    summary.history += purged.history;
    summary.audit += purged.audit;
  }
  return summary;
}

async function purgeRoom(dataSource: DataSource, store: RoomStore, roomJid: string, cutoff: Date, days: number): Promise<{ history: number; audit: number }> {
  const append = store.chains.begin();
  return store.chains.settle(
    append,
    dataSource.transaction(async (manager) => {
      await append.load(manager, [roomJid]);
      const [, history] = (await manager.query(`DELETE FROM history_messages WHERE room_jid = $1 AND sent_at < $2`, [roomJid, cutoff])) as [unknown, number];
      // The chain is cut at its first row young enough to keep: what goes is always a prefix.
      const firstKept: { seq: string }[] = await manager.query(
        `SELECT seq FROM audit_events WHERE room_jid = $1 AND seq IS NOT NULL AND at >= $2 ORDER BY seq LIMIT 1`,
        [roomJid, cutoff],
      );
      const [, audit] = (await (firstKept[0]
        ? manager.query(`DELETE FROM audit_events WHERE room_jid = $1 AND (seq < $2 OR (seq IS NULL AND at < $3))`, [roomJid, firstKept[0].seq, cutoff])
        : manager.query(`DELETE FROM audit_events WHERE room_jid = $1 AND (seq IS NOT NULL OR at < $2)`, [roomJid, cutoff]))) as [unknown, number];
      if (history + audit === 0) return { history, audit };
      const start: { seq: string; prev_hash: string }[] = await manager.query(
        `SELECT seq, prev_hash FROM audit_events WHERE room_jid = $1 AND seq IS NOT NULL ORDER BY seq LIMIT 1`,
        [roomJid],
      );
      // "this-row": nothing older is left, the purge row itself starts the chain.
      const chainStart: ChainStart | "this-row" = start[0] ? { seq: Number(start[0].seq), prevHash: start[0].prev_hash } : "this-row";
      await append.append(manager, [
        {
          kind: "retention.purged",
          roomJid,
          actorJid: null,
          subjectJid: null,
          details: { days, before: cutoff.toISOString(), history, audit, chainStart },
        },
      ]);
      return { history, audit };
    }),
  );
}
