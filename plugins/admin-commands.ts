// What a service administrator can do to the rooms, in one place for both ways in: the XEP-0050
// ad-hoc commands (plugins/service-admin.ts) and the `dmuc-gateway rooms ...` command line, which a
// running gateway receives over its database (src/shell/admin-channel.ts). Pure, like the engine:
// a command and the service state in, the new state, effects and a typed result out.
import { audit, store } from "../src/core/effects.js";
import type { ServiceRequest } from "../src/core/service.js";
import type { RoomEngine } from "../src/core/room/engine.js";
import type { RoomRequest } from "../src/core/room/api.js";
import { affiliationOf } from "../src/core/room/privileges.js";
import { newRoom, type Room } from "../src/core/room/types.js";
import { destroyRoom } from "./owner.js";
import { bareString, jidToString, parseBareJid } from "../src/xmpp/jid.js";

export type AdminCommand =
  | { op: "rooms.list" }
  | { op: "rooms.show"; room: string }
  | {
      op: "rooms.create";
      room: string;
      name?: string;
      description?: string;
      persistent?: boolean;
      public?: boolean;
      membersOnly?: boolean;
      password?: string;
      owners?: string[];
    }
  | { op: "rooms.destroy"; room: string; reason?: string; venue?: string }
  | { op: "occupants"; room: string };

export interface RoomSummary {
  jid: string;
  name: string;
  occupants: number;
  persistent: boolean;
  public: boolean;
  membersOnly: boolean;
  passwordProtected: boolean;
  locked: boolean;
  /** The last message or subject change (ISO time), or null. */
  lastActivity: string | null;
}

export interface OccupantRow {
  nick: string;
  role: string;
  affiliation: string;
  bareJid: string;
  /** The full JIDs of its sessions. */
  sessions: string[];
}

export interface RoomDetails extends RoomSummary {
  description: string;
  subject: string | null;
  historyMessages: number;
  affiliations: { jid: string; affiliation: string; nick?: string }[];
  occupantList: OccupantRow[];
}

export type AdminResult =
  | { op: "rooms.list"; rooms: RoomSummary[] }
  | { op: "rooms.show"; room: RoomDetails }
  | { op: "rooms.create"; room: RoomDetails }
  | { op: "rooms.destroy"; room: string; occupantsTold: number }
  | { op: "occupants"; room: string; occupants: OccupantRow[] };

/** A command that cannot be carried out, with the message for the operator. */
export class AdminError extends Error {
  constructor(
    message: string,
    readonly kind: "not-found" | "conflict" | "bad-request",
  ) {
    super(message);
    this.name = "AdminError";
  }
}

/** ROOM as the operator typed it: a room JID, or a bare name on the service's domain. */
export function roomJidOf(room: string, domain: string): string {
  const jid = parseBareJid(room.includes("@") ? room : `${room}@${domain}`);
  if (!jid || jid.local === null) throw new AdminError(`'${room}' is not a room address (name@${domain})`, "bad-request");
  if (jid.domain !== domain) throw new AdminError(`${jidToString(jid)} is not a room of this service (${domain})`, "bad-request");
  return jidToString(jid);
}

function lastActivity(room: Room): string | null {
  const times = [room.history.at(-1)?.at, room.subject?.at].filter((t): t is Date => t instanceof Date);
  return times.length === 0 ? null : new Date(Math.max(...times.map((t) => t.getTime()))).toISOString();
}

export function summarise(room: Room): RoomSummary {
  return {
    jid: room.jid,
    name: room.config.name,
    occupants: room.occupants.size,
    persistent: room.config.persistent,
    public: room.config.public,
    membersOnly: room.config.membersOnly,
    passwordProtected: room.config.password !== "",
    locked: room.locked,
    lastActivity: lastActivity(room),
  };
}

function occupantRows(room: Room, admins: ReadonlySet<string>): OccupantRow[] {
  return [...room.occupants.values()]
    .map((o) => ({ nick: o.nick, role: o.role, affiliation: affiliationOf(room, o.bareJid, admins), bareJid: o.bareJid, sessions: [...o.sessions.keys()] }))
    .sort((a, b) => a.nick.localeCompare(b.nick));
}

function details(room: Room, admins: ReadonlySet<string>): RoomDetails {
  return {
    ...summarise(room),
    description: room.config.description,
    subject: room.subject?.text ?? null,
    historyMessages: room.history.length,
    affiliations: [...room.affiliations.entries()]
      .map(([jid, entry]) => ({ jid, affiliation: entry.affiliation, ...(entry.nick ? { nick: entry.nick } : {}) }))
      .sort((a, b) => a.jid.localeCompare(b.jid)),
    occupantList: occupantRows(room, admins),
  };
}

function existing(request: ServiceRequest, room: string): Room {
  const jid = roomJidOf(room, request.settings.domain);
  const found = request.state.rooms.get(jid);
  if (!found) throw new AdminError(`no room ${jid}`, "not-found");
  return found;
}

function roomRequest(request: ServiceRequest, roomJid: string): RoomRequest {
  return {
    settings: request.settings,
    context: request.context,
    stanza: request.stanza,
    from: request.from,
    fromFull: jidToString(request.from),
    fromBare: bareString(request.from),
    roomJid,
    nick: null,
    effects: request.effects,
  };
}

function createRoom(rooms: RoomEngine, request: ServiceRequest, command: Extract<AdminCommand, { op: "rooms.create" }>): Room {
  const jid = roomJidOf(command.room, request.settings.domain);
  if (request.state.rooms.has(jid)) throw new AdminError(`the room ${jid} exists already`, "conflict");
  const owners = (command.owners ?? []).map((o) => {
    const owner = parseBareJid(o);
    if (!owner || owner.local === null) throw new AdminError(`'${o}' is not a bare JID (user@example.org)`, "bad-request");
    return jidToString(owner);
  });
  const forRoom = roomRequest(request, jid);
  const fresh = newRoom(jid);
  // The plugins' defaults apply as to a room a user creates; then the operator's settings, unlocked.
  const event = { request: forRoom, room: { ...fresh, affiliations: new Map(owners.map((o) => [o, { affiliation: "owner" as const }])) } };
  rooms.hooks.fire("room/created", event);
  const config = {
    ...event.room.config,
    persistent: command.persistent ?? true,
    ...(command.name !== undefined && { name: command.name }),
    ...(command.description !== undefined && { description: command.description }),
    ...(command.public !== undefined && { public: command.public }),
    ...(command.membersOnly !== undefined && { membersOnly: command.membersOnly }),
    ...(command.password !== undefined && { password: command.password }),
  };
  const room: Room = { ...event.room, config, locked: false };
  request.effects.push(store({ op: "room.save", roomJid: jid, config: room.config, subject: room.subject, locked: false }));
  for (const owner of owners) request.effects.push(store({ op: "affiliation.set", roomJid: jid, jid: owner, entry: { affiliation: "owner" } }));
  request.effects.push(audit({ kind: "room.created", roomJid: jid, actorJid: bareString(request.from), details: { by: "service-admin", owners, persistent: config.persistent } }));
  request.state = { ...request.state, rooms: request.state.rooms.with(jid, room) };
  return room;
}

/** Runs one command as a service administrator (request.from); throws AdminError. */
export function runAdminCommand(rooms: RoomEngine, request: ServiceRequest, command: AdminCommand): AdminResult {
  const admins = request.settings.admins;
  switch (command.op) {
    case "rooms.list":
      return { op: "rooms.list", rooms: [...request.state.rooms.values()].map(summarise).sort((a, b) => a.jid.localeCompare(b.jid)) };
    case "rooms.show":
      return { op: "rooms.show", room: details(existing(request, command.room), admins) };
    case "occupants": {
      const room = existing(request, command.room);
      return { op: "occupants", room: room.jid, occupants: occupantRows(room, admins) };
    }
    case "rooms.create":
      return { op: "rooms.create", room: details(createRoom(rooms, request, command), admins) };
    case "rooms.destroy": {
      const room = existing(request, command.room);
      let venue: string | undefined;
      if (command.venue !== undefined) {
        const parsed = parseBareJid(command.venue);
        if (!parsed) throw new AdminError(`'${command.venue}' is not a room address`, "bad-request");
        venue = jidToString(parsed);
      }
      destroyRoom(roomRequest(request, room.jid), room, command.reason || undefined, venue);
      request.state = { ...request.state, rooms: request.state.rooms.without(room.jid) };
      return { op: "rooms.destroy", room: room.jid, occupantsTold: room.occupants.size };
    }
  }
}
