// A room archive query as the pure core asks the shell to run it (the `archive-read` effect), and
// what the shell hands back. The core decides who may read what and how the answer looks; the shell
// only reads rows (src/shell/archive-reader.ts).
import type { Element } from "@xmpp/xml";

/** Whose messages: everyone's, one occupant's (by nick), or one user's (by real JID, bare or full). */
export type ArchiveSender = { kind: "anyone" } | { kind: "nick"; nick: string } | { kind: "real-jid"; jid: string; bare: boolean };

export interface ArchiveQuery {
  roomJid: string;
  sender: ArchiveSender;
  /** Sent at or after / at or before (XEP-0313 start and end, inclusive). */
  start?: Date;
  end?: Date;
  /** Only these archive ids (XEP-0313 #extended `ids`). */
  ids?: string[];
  /** Only the message with this stanza-id or this origin-id (finding the target of a retraction). */
  idOrOriginId?: string;
  /** Also messages kept only for the join history (sent while archiving was off). */
  includeUnarchived?: boolean;
  /** Only messages after / before the message with this archive id (exclusive). */
  afterId?: string;
  beforeId?: string;
  /**
   * Which end of the matching messages the page is taken from: `oldest` pages forward (RSM after),
   * `newest` backward (RSM before, the empty before asking for the last page).
   */
  from: "oldest" | "newest";
  /** Page size; the shell reads one more to tell whether the page is the last. */
  max: number;
}

/** One archived message as stored: the broadcast stanza (or its tombstone) and who sent it. */
export interface ArchivedMessage {
  archiveId: string;
  at: Date;
  nick: string;
  senderJid: string | null;
  stanza: Element;
}

export type ArchiveReadResult =
  /** `items` in archive order (oldest first) whichever end the page came from. */
  | { ok: true; items: ArchivedMessage[]; complete: boolean; count: number }
  /** `unknown-id`: afterId or beforeId names no message of this room's archive. */
  | { ok: false; reason: "unknown-id" | "failed" };
