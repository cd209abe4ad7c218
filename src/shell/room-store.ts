// Persists the engine's StoreWrites and audit records onto the entities' tables, and loads every
// room back at start. Writes of one batch go in one transaction; consecutive history rows go in one
// multi-row INSERT (notes/postgres-and-speed.md: per-row statements cap a service at ~2k messages/s).
import type { DataSource, EntityManager } from "typeorm";
import type { AuditRecord } from "../core/effects.js";
import type { StoreWrite } from "../core/store-writes.js";

type HistoryWrite = Extract<StoreWrite, { op: "history.append" }>;

const ROOM_ID = "(SELECT id FROM rooms WHERE jid = $1)";

export class RoomStore {
  constructor(private readonly dataSource: DataSource) {}

  /** Applies writes and audit records in order, in one transaction; returns the statement count. */
  async commit(writes: readonly StoreWrite[], audits: readonly AuditRecord[]): Promise<number> {
    let statements = 0;
    await this.dataSource.transaction(async (manager) => {
      for (let i = 0; i < writes.length; ) {
        const write = writes[i]!;
        if (write.op === "history.append") {
          let end = i;
          while (end < writes.length && writes[end]!.op === "history.append") end++;
          await insertHistory(manager, writes.slice(i, end) as HistoryWrite[]);
          i = end;
        } else {
          await apply(manager, write);
          i++;
        }
        statements++;
      }
      if (audits.length > 0) {
        await manager.query(
          `INSERT INTO audit_events (room_jid, actor_jid, kind, details)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[])`,
          [audits.map((a) => a.roomJid), audits.map((a) => a.actorJid), audits.map((a) => a.kind), audits.map((a) => JSON.stringify(a.details))],
        );
        statements++;
      }
    });
    return statements;
  }
}

async function apply(manager: EntityManager, write: Exclude<StoreWrite, HistoryWrite>): Promise<void> {
  switch (write.op) {
    case "room.save":
      await manager.query(
        // The occupant-id secret is written once, with the row (an empty one keeps the column's random default).
        `INSERT INTO rooms (jid, role, config, subject, subject_nick, subject_changed_at, locked, occupant_id_secret)
         VALUES ($1, 'primary', $2, $3, $4, $5, $6, COALESCE(NULLIF($7, ''), md5(random()::text || clock_timestamp()::text) || md5(gen_random_uuid()::text)))
         ON CONFLICT (jid) DO UPDATE SET config = EXCLUDED.config, subject = EXCLUDED.subject,
           subject_nick = EXCLUDED.subject_nick, subject_changed_at = EXCLUDED.subject_changed_at,
           locked = EXCLUDED.locked, updated_at = now()`,
        [write.roomJid, JSON.stringify(write.config), write.subject?.text ?? null, write.subject?.nick ?? null, write.subject?.at ?? null, write.locked, write.occupantIdSecret ?? ""],
      );
      return;
    case "tombstone.save":
      await manager.query(
        `INSERT INTO room_tombstones (jid, reason, alternate_venue, expires_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (jid) DO UPDATE SET reason = EXCLUDED.reason, alternate_venue = EXCLUDED.alternate_venue,
           destroyed_at = now(), expires_at = EXCLUDED.expires_at`,
        [write.roomJid, write.reason, write.alternateVenue, write.expiresAt],
      );
      return;
    case "tombstone.delete":
      await manager.query(`DELETE FROM room_tombstones WHERE jid = $1`, [write.roomJid]);
      return;
    case "room.delete":
      await manager.query(`DELETE FROM rooms WHERE jid = $1`, [write.roomJid]);
      return;
    case "replica.save":
      // Never turns a room this gateway hosts into a replica.
      await manager.query(
        `INSERT INTO rooms (jid, role, primary_jid, config, subject, subject_nick, subject_changed_at)
         VALUES ($1, 'replica', $2, $3, $4, $5, $6)
         ON CONFLICT (jid) DO UPDATE SET primary_jid = EXCLUDED.primary_jid, config = EXCLUDED.config,
           subject = EXCLUDED.subject, subject_nick = EXCLUDED.subject_nick,
           subject_changed_at = EXCLUDED.subject_changed_at, updated_at = now()
         WHERE rooms.role = 'replica'`,
        [write.roomJid, write.primaryJid, JSON.stringify(write.config), write.subject?.text ?? null, write.subject?.nick ?? null, write.subject?.at ?? null],
      );
      return;
    case "link.save":
      await manager.query(
        `INSERT INTO replicas (room_id, replica_jid, served_domain, state, keepalive_seconds, history_limit, last_seen_at, split_since)
         VALUES (${ROOM_ID}, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (room_id, replica_jid) DO UPDATE SET served_domain = EXCLUDED.served_domain, state = EXCLUDED.state,
           keepalive_seconds = EXCLUDED.keepalive_seconds, history_limit = EXCLUDED.history_limit,
           last_seen_at = EXCLUDED.last_seen_at, split_since = EXCLUDED.split_since, updated_at = now()`,
        [write.roomJid, write.replicaJid, write.domain, write.state, write.keepaliveSeconds, write.historyLimit, write.lastSeen, write.splitSince],
      );
      return;
    case "link.delete":
      await manager.query(`DELETE FROM replicas WHERE room_id = ${ROOM_ID} AND replica_jid = $2`, [write.roomJid, write.replicaJid]);
      return;
    case "affiliation.set":
      if (write.entry === null) {
        await manager.query(`DELETE FROM room_affiliations WHERE room_id = ${ROOM_ID} AND jid = $2`, [write.roomJid, write.jid]);
        return;
      }
      await manager.query(
        `INSERT INTO room_affiliations (room_id, jid, affiliation, reason, nick)
         VALUES (${ROOM_ID}, $2, $3, $4, $5)
         ON CONFLICT (room_id, jid) DO UPDATE SET affiliation = EXCLUDED.affiliation, reason = EXCLUDED.reason,
           nick = EXCLUDED.nick, updated_at = now()`,
        [write.roomJid, write.jid, write.entry.affiliation, write.entry.reason ?? null, write.entry.nick ?? null],
      );
      return;
    case "occupant.save":
      await manager.query(
        `INSERT INTO occupants (room_id, nick, real_jid, role, occupant_id, presence)
         VALUES (${ROOM_ID}, $2, $3, $4, $5, $6)
         ON CONFLICT (room_id, real_jid) DO UPDATE SET nick = EXCLUDED.nick, role = EXCLUDED.role,
           occupant_id = EXCLUDED.occupant_id, presence = EXCLUDED.presence, updated_at = now()`,
        [write.roomJid, write.nick, write.jid, write.role, write.occupantId, write.presence.toString()],
      );
      return;
    case "occupant.delete":
      await manager.query(`DELETE FROM occupants WHERE room_id = ${ROOM_ID} AND real_jid = $2`, [write.roomJid, write.jid]);
      return;
  }
}

/** One statement for a run of history rows; replays of a known stanza-id are ignored (idempotent). */
async function insertHistory(manager: EntityManager, writes: HistoryWrite[]): Promise<void> {
  const column = <T>(pick: (w: HistoryWrite) => T) => writes.map(pick);
  await manager.query(
    `INSERT INTO history_messages (room_id, stanza_id, origin_id, occupant_id, nick, sender_jid, body, stanza, sent_at)
     SELECT r.id, h.stanza_id, h.origin_id, h.occupant_id, h.nick, h.sender_jid, h.body, h.stanza, h.sent_at
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[])
       AS h(room_jid, stanza_id, origin_id, occupant_id, nick, sender_jid, body, stanza, sent_at)
     JOIN rooms r ON r.jid = h.room_jid
     ON CONFLICT (room_id, stanza_id) DO NOTHING`,
    [
      column((w) => w.roomJid),
      column((w) => w.entry.stanzaId),
      column((w) => w.entry.stanza.getChild("origin-id", "urn:xmpp:sid:0")?.attrs.id ?? null),
      column((w) => w.entry.occupantId),
      column((w) => w.entry.nick),
      column((w) => w.entry.senderJid),
      column((w) => w.entry.stanza.getChildText("body")),
      column((w) => w.entry.stanza.toString()),
      column((w) => w.entry.at.toISOString()),
    ],
  );
}
