// Structured info events for operators: room created/destroyed, occupant entered/left. Observed in
// the shell by comparing the service state before and after a stanza (the core stays free of IO and
// of logging concerns), for the one room the stanza was for, or every room when a service-level
// stanza or a timer changed the table.
import type { Logger } from "../log.js";
import type { Room } from "../core/room/types.js";
import type { ServiceState } from "../core/service.js";

function occupantsById(room: Room | undefined): Map<string, { nick: string; jid: string }> {
  const out = new Map<string, { nick: string; jid: string }>();
  for (const o of room?.occupants.values() ?? []) out.set(o.occupantId, { nick: o.nick, jid: o.bareJid });
  return out;
}

function compareRoom(log: Logger, jid: string, before: Room | undefined, after: Room | undefined): void {
  if (before === after) return;
  if (!before && after) log.info("room.created", { room: jid, persistent: after.config.persistent });
  if (before?.occupants !== after?.occupants) {
    const was = occupantsById(before);
    const now = occupantsById(after);
    for (const [id, o] of now) if (!was.has(id)) log.info("occupant.entered", { room: jid, nick: o.nick, jid: o.jid });
    for (const [id, o] of was) if (!now.has(id)) log.info("occupant.left", { room: jid, nick: o.nick, jid: o.jid, ...(after ? {} : { reason: "room destroyed" }) });
  }
  if (before && !after) log.info("room.destroyed", { room: jid });
}

/** Logs what changed between two states: in room `roomJid` only, or in every room when it is undefined. */
export function logRoomChanges(log: Logger, before: ServiceState, after: ServiceState, roomJid?: string): void {
  if (before.rooms === after.rooms) return;
  // The stanza's room is the one that changed, nearly always; otherwise (an address in another case,
  // a change elsewhere) every room is compared.
  if (roomJid !== undefined && before.rooms.get(roomJid) !== after.rooms.get(roomJid)) {
    compareRoom(log, roomJid, before.rooms.get(roomJid), after.rooms.get(roomJid));
    return;
  }
  for (const [jid, room] of after.rooms) compareRoom(log, jid, before.rooms.get(jid), room);
  for (const [jid, room] of before.rooms) if (!after.rooms.has(jid)) compareRoom(log, jid, room, undefined);
}
