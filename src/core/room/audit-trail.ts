// The audit records of a room's life (docs/AUDIT.md): one builder per kind of event, so that every
// flow that causes one (a leave, a kick, a ban, a destruction) records it with the same fields.
// Entries, exits, nick changes and messages are "traffic": the service may turn those off.
import { audit } from "../effects.js";
import type { RoomRequest } from "./api.js";
import { affiliationOf } from "./privileges.js";
import type { Occupant, Room, RoomConfig } from "./types.js";

/** Why a session left the room. */
export type ExitCause = "left" | "error" | "kicked" | "banned" | "affiliation" | "members-only" | "destroyed" | "nick-reserved";

const trafficAudited = (request: RoomRequest) => request.settings.auditTraffic !== false;

/** A session entered: its real full JID, nick, role and affiliation; `via` is set by DMUC2 (plugins/audit-via.ts). */
export function auditEntered(request: RoomRequest, room: Room, occupant: Occupant, sessionJid: string): void {
  if (!trafficAudited(request)) return;
  request.effects.push(
    audit({
      kind: "occupant.entered",
      roomJid: room.jid,
      actorJid: occupant.bareJid,
      subjectJid: occupant.bareJid,
      details: {
        jid: sessionJid,
        nick: occupant.nick,
        role: occupant.role,
        affiliation: affiliationOf(room, occupant.bareJid, request.settings.admins),
        via: "direct",
      },
    }),
  );
}

/** One session of `occupant` left (every session of a removed occupant leaves). `actorJid`: who removed it. */
export function auditLeft(request: RoomRequest, room: Room, occupant: Occupant, sessionJid: string, cause: ExitCause, actorJid: string | null, reason?: string): void {
  if (!trafficAudited(request)) return;
  request.effects.push(
    audit({
      kind: "occupant.left",
      roomJid: room.jid,
      actorJid,
      subjectJid: occupant.bareJid,
      details: {
        jid: sessionJid,
        nick: occupant.nick,
        role: occupant.role,
        affiliation: affiliationOf(room, occupant.bareJid, request.settings.admins),
        cause,
        ...(reason ? { reason } : {}),
      },
    }),
  );
}

/** Every session of a removed occupant leaves, for the same cause. */
export function auditRemoved(request: RoomRequest, room: Room, occupant: Occupant, cause: ExitCause, actorJid: string | null, reason?: string): void {
  for (const session of occupant.sessions.keys()) auditLeft(request, room, occupant, session, cause, actorJid, reason);
}

export function auditNickChange(request: RoomRequest, room: Room, occupant: Occupant, nick: string): void {
  if (!trafficAudited(request)) return;
  request.effects.push(
    audit({ kind: "nick.changed", roomJid: room.jid, actorJid: occupant.bareJid, subjectJid: occupant.bareJid, details: { jid: request.fromFull, previous: occupant.nick, nick } }),
  );
}

/** A message: a reference to the stored history row (room JID and stanza-id), not a copy of it. */
export function auditMessage(request: RoomRequest, room: Room, occupant: Occupant, stanzaId: string): void {
  if (!trafficAudited(request)) return;
  request.effects.push(audit({ kind: "message", roomJid: room.jid, actorJid: occupant.bareJid, subjectJid: null, details: { stanzaId, jid: request.fromFull, nick: occupant.nick } }));
}

export function auditSubject(request: RoomRequest, room: Room, occupant: Occupant, previous: string | null, subject: string): void {
  request.effects.push(audit({ kind: "subject.changed", roomJid: room.jid, actorJid: occupant.bareJid, subjectJid: null, details: { jid: request.fromFull, nick: occupant.nick, previous, subject } }));
}

export function auditCreated(request: RoomRequest, room: Room): void {
  request.effects.push(audit({ kind: "room.created", roomJid: room.jid, actorJid: request.fromBare, subjectJid: null, details: { jid: request.fromFull, config: auditedConfig(room.config) } }));
}

/** A room destroyed by an owner or administrator (actorJid), or dropped by the room itself when its last occupant left (null). */
export function auditDestroyed(request: RoomRequest, room: Room, actorJid: string | null, details: { reason?: string; alternate?: string; cause: "destroyed" | "abandoned" | "creation-cancelled" }): void {
  request.effects.push(audit({ kind: "room.destroyed", roomJid: room.jid, actorJid, subjectJid: null, details: { ...details, occupants: room.occupants.size } }));
}

/** Each changed setting, old -> new. The password itself is not recorded, only whether one is set. */
export function configChanges(previous: RoomConfig, next: RoomConfig): Record<string, { from: unknown; to: unknown }> {
  const before = auditedConfig(previous);
  const after = auditedConfig(next);
  const changes: Record<string, { from: unknown; to: unknown }> = {};
  for (const key of Object.keys(after)) {
    if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) changes[key] = { from: before[key] ?? null, to: after[key] ?? null };
  }
  return changes;
}

/** The configuration as audited: every setting, the password replaced by whether there is one. */
export function auditedConfig(config: RoomConfig): Record<string, unknown> {
  const { password, ...rest } = config;
  return { ...rest, password: password ? "(set)" : "" };
}
