// XEP-0421 occupant-ids derived as Prosody derives them: an HMAC of the user's bare JID with a secret of
// the room, so that the id is the same on every visit and after restarts (nothing to remember per user),
// cannot be linked between rooms, and does not reveal the JID. Deterministic: fine in the pure core.
import { createHmac } from "node:crypto";
import type { Room } from "./types.js";

export function occupantIdFor(room: Pick<Room, "jid" | "occupantIdSecret">, bareJid: string): string {
  // The first 18 bytes are the first 24 characters of the whole digest in base64url; encoded alone they
  // make a string of its own (a slice of the whole would keep all 43 characters alive per occupant).
  return createHmac("sha256", room.occupantIdSecret).update(`${room.jid}\0${bareJid}`).digest().subarray(0, 18).toString("base64url");
}
