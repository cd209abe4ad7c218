// Persists the engine's StoreWrites and audit records onto the entities' tables. Writes of one batch
// go in one transaction; consecutive history rows go in one multi-row INSERT (notes/postgres-and-speed.md:
// per-row statements cap a service at ~2k messages/s), and the batch's audit records ride along with
// the batch's last statement as a data-modifying WITH: auditing adds no round trip to a batch.
// A batch that is one statement (the usual case under traffic: messages and their audit rows, chains
// already known) runs without BEGIN/COMMIT: one statement is atomic on its own, and a batch then costs
// one round trip instead of three (issue 14).
import type { DataSource } from "typeorm";
import type { AuditRecord } from "../core/effects.js";
import type { StoreWrite } from "../core/store-writes.js";
import { AuditChains, type ChainAppend, type Queryable } from "./audit-chains.js";

export type HistoryWrite = Extract<StoreWrite, { op: "history.append" }>;
/** Runs one statement of the batch. */
type Run = (sql: string, params: unknown[]) => Promise<unknown>;

const ROOM_ID = "(SELECT id FROM rooms WHERE jid = $1)";

export class RoomStore {
  /**
   * The heads of the rooms' audit chains. `serviceJid` names the chain of events about no room;
   * `clock` stamps the rows (one time per batch).
   */
  readonly chains: AuditChains;

  constructor(
    private readonly dataSource: DataSource,
    serviceJid: string,
    clock: () => Date = () => new Date(),
  ) {
    this.chains = new AuditChains(serviceJid, clock);
  }

  /** Applies writes and audit records in order, in one transaction; returns the statement count. */
  /** Throws while the database cannot be reached (the effect runner asks during an outage). */
  async probe(): Promise<void> {
    await this.dataSource.query("SELECT 1");
  }

  async commit(writes: readonly StoreWrite[], audits: readonly AuditRecord[]): Promise<number> {
    return this.chains.exclusive(() => this.commitNow(writes, audits));
  }

  private async commitNow(writes: readonly StoreWrite[], audits: readonly AuditRecord[]): Promise<number> {
    const appended = this.chains.begin();
    if (audits.length > 0 && appended.needsLoad(audits.map((a) => this.chains.keyOf(a)))) {
      return this.chains.settle(appended, this.dataSource.transaction((manager) => applyBatch(manager, appended, writes, audits)));
    }
    // Every chain head is known: when the batch is a single statement, autocommit it.
    const single = statementCount(writes) <= 1;
    return this.chains.settle(appended, single ? applyBatch(this.dataSource, appended, writes, audits) : this.dataSource.transaction((manager) => applyBatch(manager, appended, writes, audits)));
  }
}

/** Statements the writes take (the audit rows ride along with the last one): a run of history rows is one. */
function statementCount(writes: readonly StoreWrite[]): number {
  let count = 0;
  for (let i = 0; i < writes.length; i++) if (writes[i]!.op !== "history.append" || i === 0 || writes[i - 1]!.op !== "history.append") count++;
  return count;
}

/** Applies the batch in order through `db`; returns the statement count. */
async function applyBatch(db: Queryable, appended: ChainAppend, writes: readonly StoreWrite[], audits: readonly AuditRecord[]): Promise<number> {
  let statements = 0;
  const run: Run = (sql, params) => db.query(sql, params);
  if (audits.length > 0) statements += await appended.load(db, audits.map((a) => appended.keyOf(a)));
  // The last statement carries the audit rows; without writes they go alone.
  const last: Run = audits.length === 0 ? run : (sql, params) => {
    const insert = appended.insert(audits);
    return db.query(`WITH audit_rows AS (${insert.sql}) ${shiftPlaceholders(sql, insert.params.length)}`, [...insert.params, ...params]);
  };
  for (let i = 0; i < writes.length; ) {
    const write = writes[i]!;
    let end = i + 1;
    if (write.op === "history.append") while (end < writes.length && writes[end]!.op === "history.append") end++;
    const runIt = end === writes.length ? last : run;
    if (write.op === "history.append") await insertHistory(runIt, writes.slice(i, end) as HistoryWrite[]);
    else await apply(runIt, write);
    i = end;
    statements++;
  }
  if (writes.length === 0 && audits.length > 0) statements += await appended.append(db, audits);
  return statements;
}

/** $1.. of a statement become $(1+by).., so that it can follow other parameters. */
function shiftPlaceholders(sql: string, by: number): string {
  return sql.replace(/\$(\d+)/g, (_, n: string) => `$${Number(n) + by}`);
}

async function apply(run: Run, write: Exclude<StoreWrite, HistoryWrite>): Promise<void> {
  switch (write.op) {
    case "room.save":
      await run(
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
      await run(
        `INSERT INTO room_tombstones (jid, reason, alternate_venue, expires_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (jid) DO UPDATE SET reason = EXCLUDED.reason, alternate_venue = EXCLUDED.alternate_venue,
           destroyed_at = now(), expires_at = EXCLUDED.expires_at`,
        [write.roomJid, write.reason, write.alternateVenue, write.expiresAt],
      );
      return;
    case "tombstone.delete":
      await run(`DELETE FROM room_tombstones WHERE jid = $1`, [write.roomJid]);
      return;
    case "room.delete":
      await run(`DELETE FROM rooms WHERE jid = $1`, [write.roomJid]);
      return;
    case "replica.save":
      // Never turns a room this gateway hosts into a replica.
      await run(
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
      await run(
        `INSERT INTO replicas (room_id, replica_jid, served_domain, state, keepalive_seconds, history_limit, last_seen_at, split_since)
         VALUES (${ROOM_ID}, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (room_id, replica_jid) DO UPDATE SET served_domain = EXCLUDED.served_domain, state = EXCLUDED.state,
           keepalive_seconds = EXCLUDED.keepalive_seconds, history_limit = EXCLUDED.history_limit,
           last_seen_at = EXCLUDED.last_seen_at, split_since = EXCLUDED.split_since, updated_at = now()`,
        [write.roomJid, write.replicaJid, write.domain, write.state, write.keepaliveSeconds, write.historyLimit, write.lastSeen, write.splitSince],
      );
      return;
    case "link.delete":
      await run(`DELETE FROM replicas WHERE room_id = ${ROOM_ID} AND replica_jid = $2`, [write.roomJid, write.replicaJid]);
      return;
    case "link.position":
      await run(
        `INSERT INTO dmuc_link_positions (room_id, peer_jid, out_stream, out_next_seq, in_stream, in_applied, early_origin_ids, catchup_since, catchup_after)
         SELECT id, $2, $3, $4, $5, $6, $7, $8, $9 FROM rooms WHERE jid = $1
         ON CONFLICT (room_id, peer_jid) DO UPDATE SET out_stream = EXCLUDED.out_stream, out_next_seq = EXCLUDED.out_next_seq,
           in_stream = EXCLUDED.in_stream, in_applied = EXCLUDED.in_applied, early_origin_ids = EXCLUDED.early_origin_ids,
           catchup_since = EXCLUDED.catchup_since, catchup_after = EXCLUDED.catchup_after, updated_at = now()`,
        [
          write.roomJid, write.peerJid, write.position.outStream, write.position.outNextSeq, write.position.inStream, write.position.inApplied,
          [...write.position.earlyOriginIds], write.position.catchUp?.since ?? null, write.position.catchUp?.after ?? null,
        ],
      );
      return;
    case "link.position.delete":
      await run(`DELETE FROM dmuc_link_positions WHERE room_id = ${ROOM_ID} AND peer_jid = $2`, [write.roomJid, write.peerJid]);
      return;
    case "queue.add":
      await run(
        `INSERT INTO dmuc_replica_queue (room_id, stream, seq, stanza, sent_at) SELECT id, $2, $3, $4, $5 FROM rooms WHERE jid = $1 AND role = 'replica'`,
        [write.roomJid, write.stream, write.seq, write.stanza.toString(), write.at],
      );
      return;
    case "queue.acknowledged":
      await run(`DELETE FROM dmuc_replica_queue WHERE room_id = ${ROOM_ID} AND stream = $2 AND seq <= $3`, [write.roomJid, write.stream, write.upTo]);
      return;
    case "queue.split-taken":
      await run(`DELETE FROM dmuc_replica_queue WHERE room_id = ${ROOM_ID} AND seq IS NULL`, [write.roomJid]);
      return;
    case "affiliation.set":
      if (write.entry === null) {
        await run(`DELETE FROM room_affiliations WHERE room_id = ${ROOM_ID} AND jid = $2`, [write.roomJid, write.jid]);
        return;
      }
      await run(
        `INSERT INTO room_affiliations (room_id, jid, affiliation, reason, nick)
         VALUES (${ROOM_ID}, $2, $3, $4, $5)
         ON CONFLICT (room_id, jid) DO UPDATE SET affiliation = EXCLUDED.affiliation, reason = EXCLUDED.reason,
           nick = EXCLUDED.nick, updated_at = now()`,
        [write.roomJid, write.jid, write.entry.affiliation, write.entry.reason ?? null, write.entry.nick ?? null],
      );
      return;
    case "occupant.save":
      await run(
        `INSERT INTO occupants (room_id, nick, real_jid, role, occupant_id, presence)
         VALUES (${ROOM_ID}, $2, $3, $4, $5, $6)
         ON CONFLICT (room_id, real_jid) DO UPDATE SET nick = EXCLUDED.nick, role = EXCLUDED.role,
           occupant_id = EXCLUDED.occupant_id, presence = EXCLUDED.presence, updated_at = now()`,
        [write.roomJid, write.nick, write.jid, write.role, write.occupantId, write.presence.toString()],
      );
      return;
    case "history.retract":
      await run(
        `UPDATE history_messages SET stanza = $3, body = NULL
         WHERE room_id = ${ROOM_ID} AND stanza_id = $2`,
        [write.roomJid, write.stanzaId, write.tombstone.toString()],
      );
      return;
    case "occupant.delete":
      await run(`DELETE FROM occupants WHERE room_id = ${ROOM_ID} AND real_jid = $2`, [write.roomJid, write.jid]);
      return;
  }
}

/**
 * One statement for a run of history rows; replays of a known stanza-id are ignored (idempotent).
 * The rows are inserted in the order the engine emitted them (WITH ORDINALITY ... ORDER BY), so that
 * `seq` follows the order the room broadcast them: the join with rooms alone may reorder them.
 */
export function historyInsert(writes: readonly HistoryWrite[]): { sql: string; params: unknown[] } {
  const column = <T>(pick: (w: HistoryWrite) => T) => writes.map(pick);
  return {
    sql: `INSERT INTO history_messages (room_id, room_jid, stanza_id, origin_id, occupant_id, nick, sender_jid, body, stanza, sent_at, archived)
     SELECT r.id, r.jid, h.stanza_id, h.origin_id, h.occupant_id, h.nick, h.sender_jid, h.body, h.stanza, h.sent_at, h.archived
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::boolean[])
       WITH ORDINALITY AS h(room_jid, stanza_id, origin_id, occupant_id, nick, sender_jid, body, stanza, sent_at, archived, n)
     JOIN rooms r ON r.jid = h.room_jid
     -- Row ids are taken in this order: the room's order for messages of the same instant (the join
     -- alone may reorder them).
     ORDER BY h.n
     ON CONFLICT (room_id, stanza_id) DO NOTHING`,
    params: [
      column((w) => w.roomJid),
      column((w) => w.entry.stanzaId),
      column((w) => w.entry.stanza.getChild("origin-id", "urn:xmpp:sid:0")?.attrs.id ?? null),
      // Unknown (an imported message whose archive did not say): NULL, not an empty string.
      column((w) => w.entry.occupantId || null),
      column((w) => w.entry.nick),
      column((w) => w.entry.senderJid || null),
      column((w) => w.entry.stanza.getChildText("body")),
      column((w) => w.entry.stanza.toString()),
      column((w) => w.entry.at.toISOString()),
      column((w) => w.archived),
    ],
  };
}

async function insertHistory(run: Run, writes: HistoryWrite[]): Promise<void> {
  const { sql, params } = historyInsert(writes);
  await run(sql, params);
}
