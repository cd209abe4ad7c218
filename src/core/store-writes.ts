// Rows the engine asks the shell to persist, in domain terms; src/shell/room-store.ts maps them onto
// the TypeORM entities. A write is committed before any stanza that follows it is sent.
import type { Element } from "@xmpp/xml";
import type { AffiliationEntry, HistoryEntry, Role, RoomConfig, Subject } from "./room/types.js";

export type StoreWrite =
  /** Creates or updates a room's stored settings. */
  | { op: "room.save"; roomJid: string; config: RoomConfig; subject: Subject | null; locked: boolean; occupantIdSecret?: string }
  | { op: "room.delete"; roomJid: string }
  /** Sets an affiliation; null removes it. */
  | { op: "affiliation.set"; roomJid: string; jid: string; entry: AffiliationEntry | null }
  | { op: "occupant.save"; roomJid: string; nick: string; jid: string; role: Role; occupantId: string; presence: Element }
  | { op: "occupant.delete"; roomJid: string; jid: string }
  /** A message for the join history and, when `archived`, the room's XEP-0313 archive. */
  | { op: "history.append"; roomJid: string; entry: HistoryEntry; archived: boolean }
  /**
   * Replaces an archived message by its tombstone (XEP-0424/0425): the stored stanza becomes
   * `tombstone`, the body is forgotten. The row, its archive id and its place in the order stay.
   */
  | { op: "history.retract"; roomJid: string; stanzaId: string; tombstone: Element }
  /** A DMUC2 replica's copy of a remote room (rooms row with role 'replica'); its history goes through history.append. */
  | { op: "replica.save"; roomJid: string; primaryJid: string; config: ReplicaRoomConfig; subject: Subject | null }
  /**
   * The state of a DMUC2 link (replicas row): on the primary, one per room and replica; on a replica,
   * one per replicated room with replicaJid = its own JID. For operators (`dmuc-gateway links`) and audits.
   */
  | { op: "link.save"; roomJid: string; replicaJid: string; domain: string; state: StoredLinkState; keepaliveSeconds: number; historyLimit: number | null; lastSeen: Date | null; splitSince: Date | null }
  | { op: "link.delete"; roomJid: string; replicaJid: string }
  /**
   * Where one end of a DMUC2 link stands in its streams (docs/PROTOCOL.md "Durability"): on the primary
   * per room and replica (peerJid: the replica), on a replica per room (peerJid: the primary's room JID).
   */
  | { op: "link.position"; roomJid: string; peerJid: string; position: StoredLinkPosition }
  | { op: "link.position.delete"; roomJid: string; peerJid: string }
  /**
   * A replica's user's stanza the primary has not acknowledged: a submission numbered `seq` in the
   * replica's `stream`, or (both null) a message sent during a split, kept for the netjoin.
   */
  | { op: "queue.add"; roomJid: string; stream: string | null; seq: number | null; stanza: Element; at: Date }
  /** The primary acknowledged the replica's `stream` up to `upTo`: those rows go. */
  | { op: "queue.acknowledged"; roomJid: string; stream: string; upTo: number }
  /** The split-time messages went onto the link at netjoin (queue.add rows with numbers replace them). */
  | { op: "queue.split-taken"; roomJid: string }
  /** A destroyed persistent room remembered until `expiresAt` (src/core/tombstones.ts); delete forgets it. */
  | { op: "tombstone.save"; roomJid: string; reason: string | null; alternateVenue: string | null; expiresAt: Date }
  | { op: "tombstone.delete"; roomJid: string };

/** The link states the replicas table stores; a link being resynchronised is stored as split until healed. */
export type StoredLinkState = "negotiating" | "active" | "split" | "closed";

/** One link end's place in its streams (dmuc_link_positions). */
export interface StoredLinkPosition {
  /** Our stream and its next number; null on the primary (its stream starts again after a restart). */
  outStream: string | null;
  outNextSeq: number | null;
  /** The other side's stream we apply (null: none yet) and how far. */
  inStream: string | null;
  inApplied: number;
  /** A replica's origin-ids of messages its users saw early (local continuation); empty on the primary. */
  earlyOriginIds: readonly string[];
  /** A replica's netjoin catch-up under way: from the split's start, after this stanza-id (null: none read). */
  catchUp: { since: Date; after: string | null } | null;
}

/** What a replica keeps of a remote room's settings (the rooms.config JSON of a 'replica' row). */
export interface ReplicaRoomConfig {
  whois: "moderators" | "anyone";
  presenceBroadcast: Role[];
  keepaliveSeconds: number;
  historyLimit: number;
  splitChat?: boolean;
}
