// XEP-0421 occupant-ids derived as Prosody derives them: an HMAC of the user's bare JID with a secret of
// the room, so that the id is the same on every visit and after restarts (nothing to remember per user),
// cannot be linked between rooms, and does not reveal the JID. Deterministic: fine in the pure core.
import { createHmac } from "node:crypto";
import type { Room } from "./types.js";

export function occupantIdFor(room: Pick<Room, "jid" | "occupantIdSecret">, bareJid: string): string {
  return createHmac("sha256", room.occupantIdSecret).update(`${room.jid}\0${bareJid}`).digest("base64url").slice(0, 24);
}
