// What the pure core asks the shell to do. The engine never performs IO: it returns these, and the
// shell (src/shell/) executes them in order, writes before the sends that depend on them.
import type { Element } from "@xmpp/xml";
import type { StoreWrite } from "./store-writes.js";
import type { ArchiveQuery, ArchiveReadResult } from "./archive/query.js";

/**
 * One row of the audit trail (docs/AUDIT.md). The shell stamps its time and its place in the room's
 * hash chain when it commits it, in the same transaction as the state change it describes.
 */
export interface AuditRecord {
  kind: string;
  /** The room; null for events about no room (stored under the service's domain). */
  roomJid: string | null;
  /** The bare JID of who acted; null when the room or the gateway itself acted. */
  actorJid: string | null;
  /** The bare JID the event is about: the occupant who entered or left, the user kicked, banned, invited. */
  subjectJid?: string | null;
  details: Record<string, unknown>;
}

/**
 * Marks the copies of one room broadcast (every copy of a presence or groupchat message to the
 * occupants), so that DMUC2 can replace the copies for a replica's users by one copy to the replica.
 */
export interface FanOut {
  /** The copy for a replica: with real JIDs when one of its users may see them. */
  forReplica(seesJids: boolean): Element;
}

export type Effect =
  | { kind: "send"; stanza: Element; fanout?: FanOut }
  | { kind: "store"; write: StoreWrite }
  | { kind: "audit"; record: AuditRecord }
  | { kind: "log"; level: "debug" | "info" | "warn"; event: string; fields: Record<string, unknown> }
  /**
   * Read from the room's stored messages, after every write before it is committed; `then` (pure)
   * turns what was read into the next effects (the stanzas of an answer, a tombstone to store...).
   */
  | { kind: "archive-read"; query: ArchiveQuery; then: (result: ArchiveReadResult) => Effect[] };

export const send = (stanza: Element, fanout?: FanOut): Effect => (fanout ? { kind: "send", stanza, fanout } : { kind: "send", stanza });
export const archiveRead = (query: ArchiveQuery, then: (result: ArchiveReadResult) => Effect[]): Effect => ({ kind: "archive-read", query, then });
export const store = (write: StoreWrite): Effect => ({ kind: "store", write });
export const audit = (record: AuditRecord): Effect => ({ kind: "audit", record });
export const logEffect = (level: "debug" | "info" | "warn", event: string, fields: Record<string, unknown> = {}): Effect => ({
  kind: "log",
  level,
  event,
  fields,
});
