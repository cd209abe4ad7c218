// Keeps a replica's local sessions in the occupants table (rows of its 'replica' room), so that a
// restarted replica still knows whom it serves: a write when a session is taken or let go.
import { store, type Effect } from "../effects.js";
import type { Role } from "../room/types.js";
import { NS } from "../../xmpp/stanza.js";
import type { DmucState } from "./state.js";

const STORED_ROLES: readonly Role[] = ["moderator", "participant", "visitor"];

export function localSessionWrites(before: DmucState["replicated"], after: DmucState["replicated"], effects: Effect[]): void {
  if (before === after) return;
  for (const [roomJid, room] of after) {
    const old = before.get(roomJid);
    if (old?.local === room.local && old.roster === room.roster) continue;
    for (const [session, nick] of room.local) {
      const presence = room.roster.get(nick);
      if (!presence || (old?.local.get(session) === nick && old.roster.get(nick) === presence)) continue;
      const item = presence.getChild("x", NS.MUC_USER)?.getChild("item");
      const role = STORED_ROLES.find((r) => r === item?.attrs.role) ?? "participant";
      const occupantId = presence.getChild("occupant-id", NS.OCCUPANT_ID)?.attrs.id ?? "";
      effects.push(store({ op: "occupant.save", roomJid, nick, jid: session, role, occupantId, presence }));
    }
    for (const session of old?.local.keys() ?? []) {
      if (!room.local.has(session)) effects.push(store({ op: "occupant.delete", roomJid, jid: session }));
    }
  }
}
