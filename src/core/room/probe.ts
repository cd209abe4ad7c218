// Presence probes to an occupant's room JID (Prosody #1535): an occupant may ask for the current
// presence of another occupant, or of a user who reserved that nick but is away (unavailable, role
// none). Non-occupants are refused, so a probe reveals nothing that being in the room would not.
import xml from "@xmpp/xml";
import { send } from "../effects.js";
import { StanzaError } from "../stanza-error.js";
import { NS } from "../../xmpp/stanza.js";
import type { RoomRequest } from "./api.js";
import { reservedNickOwner } from "./affiliations.js";
import { occupantOfSession } from "./mutate.js";
import { addressed, presenceVariants } from "./presence.js";
import { AFFILIATION_RANK, affiliationOf, canSeeRealJids } from "./privileges.js";
import type { Room } from "./types.js";

export function respondToProbe(request: RoomRequest, room: Room): void {
  const prober = occupantOfSession(room, request.fromFull);
  if (!prober) throw new StanzaError("cancel", "not-acceptable", "You are not currently connected to this chat", { by: room.jid });
  if (request.nick === null) return;

  const probed = room.occupants.get(request.nick);
  if (probed) {
    const variants = presenceVariants(room, probed);
    const stanza = probed === prober ? variants.forSelf() : variants.forViewer(prober.role);
    request.effects.push(send(addressed(stanza, request.fromFull)));
    return;
  }

  const owner = reservedNickOwner(room, request.nick);
  if (owner === undefined) return; // an unknown nick: nothing to report
  const viewerAffiliation = affiliationOf(room, request.fromBare, request.settings.admins);
  const showJid = canSeeRealJids(room, prober.role) || AFFILIATION_RANK[viewerAffiliation] >= AFFILIATION_RANK.admin;
  const presence = xml(
    "presence",
    { from: `${room.jid}/${request.nick}`, to: request.fromFull, type: "unavailable" },
    xml("x", { xmlns: NS.MUC_USER }, xml("item", { affiliation: affiliationOf(room, owner), role: "none", nick: request.nick, jid: showJid ? owner : undefined })),
  );
  request.effects.push(send(presence));
}
