// Small immutable updates of a room, shared by the engine and plugins.
import type { Occupant, Room, Session } from "./types.js";

export function withOccupant(room: Room, occupant: Occupant): Room {
  const occupants = new Map(room.occupants).set(occupant.nick, occupant);
  const sessionNicks = new Map(room.sessionNicks);
  for (const jid of occupant.sessions.keys()) sessionNicks.set(jid, occupant.nick);
  return { ...room, occupants, sessionNicks };
}

export function withoutOccupant(room: Room, occupant: Occupant): Room {
  const occupants = new Map(room.occupants);
  occupants.delete(occupant.nick);
  const sessionNicks = new Map(room.sessionNicks);
  for (const jid of occupant.sessions.keys()) sessionNicks.delete(jid);
  return { ...room, occupants, sessionNicks };
}

export function withSession(occupant: Occupant, session: Session): Occupant {
  const sessions = new Map(occupant.sessions);
  // Re-inserting moves the session last: the latest presence represents the occupant.
  sessions.delete(session.jid);
  sessions.set(session.jid, session);
  return { ...occupant, sessions };
}

export function withoutSession(room: Room, occupant: Occupant, jid: string): { room: Room; occupant: Occupant } {
  const sessions = new Map(occupant.sessions);
  sessions.delete(jid);
  const updated = { ...occupant, sessions };
  const sessionNicks = new Map(room.sessionNicks);
  sessionNicks.delete(jid);
  return { room: { ...room, occupants: new Map(room.occupants).set(occupant.nick, updated), sessionNicks }, occupant: updated };
}

export function occupantOfSession(room: Room, jid: string): Occupant | undefined {
  const nick = room.sessionNicks.get(jid);
  return nick === undefined ? undefined : room.occupants.get(nick);
}
