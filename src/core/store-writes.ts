// Rows the engine asks the shell to persist, in domain terms; src/shell/room-store.ts maps them onto
// the TypeORM entities. A write is committed before any stanza that follows it is sent.
import type { Element } from "@xmpp/xml";
import type { AffiliationEntry, HistoryEntry, Role, RoomConfig, Subject } from "./room/types.js";

export type StoreWrite =
  /** Creates or updates a room's stored settings. */
  | { op: "room.save"; roomJid: string; config: RoomConfig; subject: Subject | null; locked: boolean }
  | { op: "room.delete"; roomJid: string }
  /** Sets an affiliation; null removes it. */
  | { op: "affiliation.set"; roomJid: string; jid: string; entry: AffiliationEntry | null }
  | { op: "occupant.save"; roomJid: string; nick: string; jid: string; role: Role; occupantId: string; presence: Element }
  | { op: "occupant.delete"; roomJid: string; jid: string }
  | { op: "history.append"; roomJid: string; entry: HistoryEntry };
