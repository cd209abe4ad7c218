// Loads every stored room into engine state at start: configuration, affiliations, live occupants
// (so nobody is kicked by a restart) and the recent history each room sends on entering, in the
// room's order (history_messages.seq: the order occupants saw, which times alone cannot give).
import { keptPresence } from "../core/room/kept-presence.js";
import { trimHistory } from "../core/room/history.js";
import { randomUUID } from "node:crypto";
import type { Tombstone } from "../core/tombstones.js";
import type { DataSource } from "typeorm";
import parse from "@xmpp/xml/lib/parse.js";
import type { Element } from "@xmpp/xml";
import { DEFAULT_ROOM_CONFIG, newRoom, type AffiliationEntry, type HistoryEntry, type Occupant, type Role, type Room, type RoomConfig } from "../core/room/types.js";
import type { Logger } from "../log.js";
import type { DmucState, ReplicaLink, ReplicatedRoom } from "../core/dmuc/state.js";
import type { ReplicaRoomConfig } from "../core/store-writes.js";
import { domainOf } from "../core/dmuc/primary-delivery.js";
import { newStream, resumedStream } from "../core/dmuc/link/stream.js";
import { restoredReplicaLink } from "../core/dmuc/replica-records.js";
import { orderBy } from "./archive-order.js";

interface RoomRow { id: string; jid: string; config: Partial<RoomConfig>; subject: string | null; subject_nick: string | null; subject_changed_at: Date | null; locked: boolean; occupant_id_secret: string }
interface AffiliationRow { room_id: string; jid: string; affiliation: AffiliationEntry["affiliation"]; reason: string | null; nick: string | null }
interface OccupantRow { room_id: string; nick: string; real_jid: string; role: Role; occupant_id: string; presence: string }
interface HistoryRow { room_id: string; stanza_id: string; occupant_id: string | null; nick: string; sender_jid: string | null; stanza: string; sent_at: Date }

function bareOf(jid: string): string {
  const slash = jid.indexOf("/");
  return slash === -1 ? jid : jid.slice(0, slash);
}

function parseStanza(text: string, log: Logger, what: string): Element | null {
  try {
    return parse(text);
  } catch (err) {
    log.warn("store.unparsable_stanza", { what, error: err });
    return null;
  }
}

/** Every hosted room, or only the one named `onlyJid` (a room imported while the gateway runs). */
export async function loadRooms(dataSource: DataSource, historyLimit: number, log: Logger, maxHistoryChars = Infinity, onlyJid?: string): Promise<Map<string, Room>> {
  // $1 is the room to load, or NULL for all of them.
  const which = `(SELECT id FROM rooms WHERE role = 'primary' AND ($1::text IS NULL OR jid = $1))`;
  const only = [onlyJid ?? null];
  const rooms: RoomRow[] = await dataSource.query(`SELECT id, jid, config, subject, subject_nick, subject_changed_at, locked, occupant_id_secret FROM rooms WHERE id IN ${which}`, only);
  const affiliations: AffiliationRow[] = await dataSource.query(`SELECT room_id, jid, affiliation, reason, nick FROM room_affiliations WHERE room_id IN ${which}`, only);
  const occupants: OccupantRow[] = await dataSource.query(`SELECT room_id, nick, real_jid, role, occupant_id, presence FROM occupants WHERE room_id IN ${which} ORDER BY updated_at, id`, only);
  const history: HistoryRow[] = await dataSource.query(
    `SELECT room_id, stanza_id, occupant_id, nick, sender_jid, stanza, sent_at FROM (
       SELECT h.*, row_number() OVER (PARTITION BY room_id ORDER BY ${orderBy("h", "DESC")}) AS n FROM history_messages h
       WHERE h.body IS NOT NULL -- retracted messages (tombstones) are not replayed
         AND h.room_id IN ${which}
     ) recent WHERE n <= $2 ORDER BY ${orderBy("recent", "ASC")}`,
    [onlyJid ?? null, historyLimit],
  );

  const byId = new Map<string, Room>();
  for (const row of rooms) {
    const room: Room = {
      ...newRoom(row.jid, { ...DEFAULT_ROOM_CONFIG, ...row.config }, row.occupant_id_secret),
      locked: row.locked,
      subject: row.subject === null ? null : { text: row.subject, nick: row.subject_nick, at: row.subject_changed_at ?? new Date(0) },
    };
    byId.set(row.id, room);
  }
  const update = (id: string, change: (room: Room) => Room) => {
    const room = byId.get(id);
    if (room) byId.set(id, change(room));
  };

  for (const row of affiliations) {
    const entry: AffiliationEntry = { affiliation: row.affiliation, reason: row.reason ?? undefined, nick: row.nick ?? undefined };
    update(row.room_id, (room) => ({ ...room, affiliations: new Map(room.affiliations).set(row.jid, entry) }));
  }

  for (const row of occupants) {
    const presence = parseStanza(row.presence, log, "occupant presence");
    if (!presence) continue;
    update(row.room_id, (room) => {
      const existing = room.occupants.get(row.nick);
      const session = { jid: row.real_jid, presence: keptPresence(presence) };
      const occupant: Occupant = existing
        ? { ...existing, sessions: new Map(existing.sessions).set(row.real_jid, session) }
        : { nick: row.nick, bareJid: bareOf(row.real_jid), role: row.role, occupantId: row.occupant_id, sessions: new Map([[row.real_jid, session]]) };
      return {
        ...room,
        occupants: new Map(room.occupants).set(row.nick, occupant),
        sessionNicks: new Map(room.sessionNicks).set(row.real_jid, row.nick),
      };
    });
  }

  const entries = new Map<string, HistoryEntry[]>();
  for (const row of history) {
    const stanza = parseStanza(row.stanza, log, "history message");
    if (!stanza) continue;
    const list = entries.get(row.room_id) ?? [];
    list.push({ stanzaId: row.stanza_id, nick: row.nick, occupantId: row.occupant_id ?? "", senderJid: row.sender_jid ?? "", at: row.sent_at, stanza, chars: row.stanza.length });
    entries.set(row.room_id, list);
  }
  // Rooms nobody is in keep their history on disk until someone enters (Gateway reads it back then).
  for (const [id, list] of entries) {
    update(id, (room) => (room.occupants.size === 0 ? { ...room, historyOnDisk: true } : { ...room, history: trimHistory(list, room.config.historyLength, maxHistoryChars) }));
  }

  return new Map([...byId.values()].map((room) => [room.jid, room]));
}

/** One room's recent history, oldest first, as the room keeps it in memory (read back before an entry). */
export async function loadRoomHistory(dataSource: DataSource, roomJid: string, limit: number, maxHistoryChars: number, log: Logger): Promise<HistoryEntry[]> {
  const rows: HistoryRow[] = await dataSource.query(
    `SELECT h.room_id, h.stanza_id, h.occupant_id, h.nick, h.sender_jid, h.stanza, h.sent_at FROM history_messages h JOIN rooms r ON r.id = h.room_id
     WHERE r.jid = $1 AND r.role = 'primary' AND h.body IS NOT NULL ORDER BY ${orderBy("h", "DESC")} LIMIT $2`,
    [roomJid, limit],
  );
  const entries: HistoryEntry[] = [];
  for (const row of rows.reverse()) {
    const stanza = parseStanza(row.stanza, log, "history message");
    if (stanza) entries.push({ stanzaId: row.stanza_id, nick: row.nick, occupantId: row.occupant_id ?? "", senderJid: row.sender_jid ?? "", at: row.sent_at, stanza, chars: row.stanza.length });
  }
  return [...trimHistory(entries, limit, maxHistoryChars)];
}

interface LinkRowDb { room: string; replica_jid: string; served_domain: string; state: "active" | "split"; keepalive_seconds: number; history_limit: number | null; split_since: Date | null; in_stream: string | null; in_applied: number | null }

/**
 * The primary's DMUC2 links, so that a restart goes on delivering through the replicas: each link's
 * users are the room's restored sessions of its domain, its place in the replica's stream is where it was,
 * and it starts split: the first answer from the replica brings a netjoin. A link that was being
 * negotiated is dropped (the adapter layer starts again).
 */
export async function loadLinks(dataSource: DataSource, rooms: ReadonlyMap<string, Room>, now: number): Promise<DmucState["links"]> {
  const rows: LinkRowDb[] = await dataSource.query(
    `SELECT r.jid AS room, p.replica_jid, p.served_domain, p.state, p.keepalive_seconds, p.history_limit, p.split_since, l.in_stream, l.in_applied
     FROM replicas p JOIN rooms r ON r.id = p.room_id
     LEFT JOIN dmuc_link_positions l ON l.room_id = p.room_id AND l.peer_jid = p.replica_jid
     WHERE r.role = 'primary' AND p.state IN ('active', 'split')`,
  );
  const links = new Map<string, Map<string, ReplicaLink>>();
  for (const row of rows) {
    const room = rooms.get(row.room);
    if (!room) continue;
    const members = new Set([...room.sessionNicks.keys()].filter((s) => domainOf(s) === row.served_domain));
    const link: ReplicaLink = {
      replicaJid: row.replica_jid,
      domain: row.served_domain,
      // Split until the replica answers our ping: what we broadcast before we stopped may never have left,
      // and the netjoin's catch-up reads from the replica's own last message whatever it lacks.
      state: "split",
      keepaliveSeconds: row.keepalive_seconds,
      historyLimit: row.history_limit ?? 0,
      members,
      lastHeard: now,
      lastSent: now,
      // Our stream starts again (the replica takes it from its first stanza; the netjoin's catch-up reads
      // from the history what it missed); the replica's goes on where it was applied, so a resent
      // submission is recognised as one already taken. Without a committed place in it, the first
      // numbered stanza seen starts it (the place is lost, not known).
      stream: row.in_stream !== null ? resumedStream(newStream<Element>(randomUUID(), now), row.in_stream, row.in_applied ?? 0) : { ...newStream<Element>(randomUUID(), now), lostPlace: true },
      splitSince: row.split_since?.getTime() ?? now,
    };
    links.set(row.room, (links.get(row.room) ?? new Map()).set(link.replicaJid, link));
  }
  return links;
}

interface ReplicaRoomRow { id: string; jid: string; primary_jid: string | null; config: Partial<ReplicaRoomConfig>; subject: string | null; subject_nick: string | null; subject_changed_at: Date | null }

/**
 * A replica's copies of remote rooms, with the local sessions it serves and their history. Restored
 * as split: the replica pings each room, asks for netjoin when it answers, and gets the roster and
 * what it missed (docs/PROTOCOL.md, Netjoin); meanwhile its users keep talking among themselves.
 */
export async function loadReplicas(dataSource: DataSource, now: number, log: Logger): Promise<DmucState["replicated"]> {
  const rooms: ReplicaRoomRow[] = await dataSource.query(`SELECT id, jid, primary_jid, config, subject, subject_nick, subject_changed_at FROM rooms WHERE role = 'replica'`);
  if (rooms.length === 0) return new Map();
  const ids = rooms.map((r) => r.id);
  const occupants: OccupantRow[] = await dataSource.query(`SELECT room_id, nick, real_jid, role, occupant_id, presence FROM occupants WHERE room_id = ANY($1::bigint[]) ORDER BY id`, [ids]);
  const history: HistoryRow[] = await dataSource.query(
    `SELECT room_id, stanza_id, occupant_id, nick, sender_jid, stanza, sent_at FROM (
       SELECT h.*, row_number() OVER (PARTITION BY room_id ORDER BY ${orderBy("h", "DESC")}) AS n FROM history_messages h WHERE room_id = ANY($1::bigint[])
     ) recent WHERE n <= 1000 ORDER BY ${orderBy("recent", "ASC")}`,
    [ids],
  );
  const positions: PositionRow[] = await dataSource.query(
    `SELECT room_id, out_stream, out_next_seq, in_stream, in_applied, early_origin_ids, catchup_since, catchup_after FROM dmuc_link_positions WHERE room_id = ANY($1::bigint[])`,
    [ids],
  );
  const queued: QueueRow[] = await dataSource.query(`SELECT room_id, stream, seq, stanza, sent_at FROM dmuc_replica_queue WHERE room_id = ANY($1::bigint[]) ORDER BY id`, [ids]);
  const replicated = new Map<string, ReplicatedRoom>();
  for (const row of rooms) {
    const config = row.config;
    const saved = positions.find((p) => p.room_id === row.id);
    const position = saved ? { outStream: saved.out_stream, outNextSeq: saved.out_next_seq, inStream: saved.in_stream, inApplied: saved.in_applied, earlyOriginIds: saved.early_origin_ids, catchUp: saved.catchup_since ? { since: saved.catchup_since, after: saved.catchup_after } : null } : null;
    const rows = queued.flatMap((q) => {
      const stanza = q.room_id === row.id ? parseStanza(q.stanza, log, "replica queued stanza") : null;
      return stanza ? [{ stream: q.stream, seq: q.seq, stanza, at: q.sent_at }] : [];
    });
    const { link, splitQueue, echoes, catchUp } = restoredReplicaLink(position, rows, randomUUID(), now);
    const roster = new Map<string, Element>();
    const local = new Map<string, string>();
    for (const o of occupants.filter((o) => o.room_id === row.id)) {
      const presence = parseStanza(o.presence, log, "replica occupant presence");
      if (presence) roster.set(o.nick, presence);
      local.set(o.real_jid, o.nick);
    }
    const historyLimit = config.historyLimit ?? 20;
    const entries = history
      .filter((h) => h.room_id === row.id)
      .flatMap((h) => {
        const stanza = parseStanza(h.stanza, log, "replica history message");
        return stanza ? [{ stanzaId: h.stanza_id, nick: h.nick, occupantId: h.occupant_id ?? "", senderJid: h.sender_jid ?? "", at: h.sent_at, stanza, chars: h.stanza.length }] : [];
      })
      .slice(-historyLimit);
    replicated.set(row.jid, {
      roomJid: row.jid,
      primaryJid: row.primary_jid ?? row.jid,
      keepaliveSeconds: config.keepaliveSeconds ?? 60,
      historyLimit,
      whois: config.whois ?? "moderators",
      presenceBroadcast: config.presenceBroadcast ?? ["moderator", "participant", "visitor"],
      roster,
      local,
      history: entries,
      subject: row.subject === null ? null : { text: row.subject, nick: row.subject_nick, at: row.subject_changed_at ?? new Date(0) },
      lastHeard: now,
      lastSent: now,
      splitChat: config.splitChat ?? true,
      splitSince: now,
      link,
      splitQueue,
      splitPresences: new Map(),
      splitGone: new Set(),
      echoes,
      catchUp,
      restored: true,
    });
  }
  return replicated;
}

interface PositionRow {
  room_id: string;
  out_stream: string | null;
  out_next_seq: number | null;
  in_stream: string | null;
  in_applied: number;
  early_origin_ids: string[];
  catchup_since: Date | null;
  catchup_after: string | null;
}
interface QueueRow { room_id: string; stream: string | null; seq: number | null; stanza: string; sent_at: Date }

/** The tombstones of destroyed rooms that have not expired; expired ones are deleted. */
export async function loadTombstones(dataSource: DataSource): Promise<Map<string, Tombstone>> {
  await dataSource.query(`DELETE FROM room_tombstones WHERE expires_at <= now()`);
  const rows: { jid: string; reason: string | null; alternate_venue: string | null; expires_at: Date }[] = await dataSource.query(
    `SELECT jid, reason, alternate_venue, expires_at FROM room_tombstones`,
  );
  return new Map(rows.map((r) => [r.jid, { roomJid: r.jid, reason: r.reason, alternateVenue: r.alternate_venue, expiresAt: r.expires_at }]));
}
