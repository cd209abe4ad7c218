// Room creation limits (issue 16 point 8): anyone may create rooms, but not without bound. The total
// number of rooms (DMUC_MAX_ROOMS) and the rooms one user owns (DMUC_MAX_ROOMS_PER_USER) are capped;
// service administrators are exempt. Refused like Prosody's restrict_room_creation: not-allowed.
import { StanzaError } from "./stanza-error.js";
import type { RoomTable } from "./room-table.js";

export interface RoomQuota {
  readonly maxRooms: number;
  readonly maxRoomsPerUser: number;
}

/** Throws not-allowed when `bareJid` may not create one more room. O(rooms) for the per-user count: only on creation. */
export function checkRoomQuota(rooms: RoomTable, quota: RoomQuota | undefined, bareJid: string, roomJid: string, admins: ReadonlySet<string>): void {
  if (!quota || admins.has(bareJid)) return;
  if (rooms.size >= quota.maxRooms) {
    throw new StanzaError("cancel", "not-allowed", "This service has as many rooms as it may hold; no room can be created now", { by: roomJid });
  }
  let owned = 0;
  for (const room of rooms.values()) {
    if (room.affiliations.get(bareJid)?.affiliation === "owner" && ++owned >= quota.maxRoomsPerUser) {
      throw new StanzaError("cancel", "not-allowed", `You own ${owned} rooms, the most one user may create`, { by: roomJid });
    }
  }
}
