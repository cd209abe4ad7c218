// XEP-0045 §10.1-§10.2 and §10.9: the owner's configuration form, and room destruction.
import xml from "@xmpp/xml";
import { send, store, audit } from "../src/core/effects.js";
import type { Plugin } from "../src/core/service.js";
import { StanzaError, badRequest, forbidden } from "../src/core/stanza-error.js";
import { broadcastStanza, saveRoom } from "../src/core/room/broadcast.js";
import { addressed, presenceVariants } from "../src/core/room/presence.js";
import { STATUS } from "../src/core/room/occupancy.js";
import type { Room } from "../src/core/room/types.js";
import { auditDestroyed, auditRemoved, configChanges } from "../src/core/room/audit-trail.js";
import type { RoomRequest } from "../src/core/room/api.js";
import type { MutableConfig } from "../src/core/room/config-fields.js";
import { buildForm, formValues, parseForm, type FormField } from "../src/xmpp/forms.js";
import { NS } from "../src/xmpp/stanza.js";
import { parseJid } from "../src/xmpp/jid.js";

/** Removes every occupant with a <destroy/> notice and deletes the room (§10.9). */
export function destroyRoom(request: RoomRequest, room: Room, reason?: string, alternate?: string, password?: string, cause: "destroyed" | "creation-cancelled" = "destroyed"): undefined {
  const destroy = xml("destroy", { jid: alternate }, reason ? xml("reason", {}, reason) : null, password ? xml("password", {}, password) : null);
  for (const occupant of room.occupants.values()) {
    const variants = presenceVariants(room, occupant, { type: "unavailable", role: "none", userChildren: [destroy] });
    for (const jid of occupant.sessions.keys()) request.effects.push(send(addressed(variants.forSelf(), jid)));
    auditRemoved(request, room, occupant, "destroyed", request.fromBare, reason);
  }
  request.effects.push(store({ op: "room.delete", roomJid: room.jid }));
  const days = request.settings.tombstoneDays ?? 0;
  if (room.config.persistent && days > 0) {
    const expiresAt = new Date(request.context.now.getTime() + days * 86_400_000);
    request.effects.push(store({ op: "tombstone.save", roomJid: room.jid, reason: reason ?? null, alternateVenue: alternate ?? null, expiresAt }));
  }
  auditDestroyed(request, room, request.fromBare, { reason, alternate, cause });
  return undefined;
}

export const ownerPlugin: Plugin = {
  name: "owner",
  register({ rooms }) {
    rooms.iq.get(NS.MUC_OWNER, "query", ({ request, target, affiliation }) => {
      if (affiliation !== "owner") throw forbidden("Only owners may configure the room");
      const fields: (FormField & { order?: number })[] = [];
      rooms.hooks.fire("room/config-form", { request, room: target, fields });
      fields.sort((a, b) => (a.order ?? 0) - (b.order ?? 0));
      const form = buildForm({
        type: "form",
        formType: NS.MUC_ROOMCONFIG,
        title: `Configuration for ${target.jid}`,
        fields: fields.map(({ order: _order, ...field }) => field),
      });
      return xml("query", { xmlns: NS.MUC_OWNER }, form);
    });

    rooms.iq.set(NS.MUC_OWNER, "query", (iq, query) => {
      const { request, target, affiliation } = iq;
      if (affiliation !== "owner") throw forbidden("Only owners may configure or destroy the room");
      const destroy = query.getChild("destroy");
      if (destroy) {
        const alternate = destroy.attrs.jid;
        if (alternate !== undefined && !parseJid(alternate)) throw new StanzaError("modify", "jid-malformed", "The alternate venue is not a valid JID");
        iq.room = destroyRoom(request, target, destroy.getChildText("reason") ?? undefined, alternate, destroy.getChildText("password") ?? undefined);
        return null;
      }
      const form = parseForm(query.getChild("x", NS.DATA_FORMS));
      if (!form) throw badRequest("Expected a data form or <destroy/>");
      if (form.type === "cancel") {
        // Cancelling the initial configuration of a new room destroys it (§10.1.3).
        if (target.locked) iq.room = destroyRoom(request, target, undefined, undefined, undefined, "creation-cancelled");
        return null;
      }
      if (form.type !== "submit") throw badRequest("Expected a submitted form");
      if (form.formType !== undefined && form.formType !== NS.MUC_ROOMCONFIG) throw badRequest("Unknown FORM_TYPE");

      const config: MutableConfig = { ...target.config };
      const veto = rooms.hooks.fire("room/config-submitted", { request, room: target, values: formValues(form), config });
      if (veto) throw veto;
      const previous = target.config;
      const event = { request, room: { ...target, config } as Room, previous };
      rooms.hooks.fire("room/config-changed", event);
      saveRoom(request, event.room);
      const changes = configChanges(previous, config);
      if (Object.keys(changes).length > 0) {
        request.effects.push(audit({ kind: "config.changed", roomJid: target.jid, actorJid: request.fromBare, subjectJid: null, details: { changes } }));
        // §10.2.1: occupants learn that a setting changed (104) when it is not about privacy alone.
        // 172/173: the room became non-anonymous or semi-anonymous (§10.2.1).
        const codes: number[] = [STATUS.CONFIG_CHANGED];
        if (previous.whois !== config.whois) codes.push(config.whois === "anyone" ? STATUS.NOW_NON_ANONYMOUS : STATUS.NOW_SEMI_ANONYMOUS);
        // 170/171: the room is now logged, or no longer (§10.2.1, as Prosody's muc_mam).
        if (previous.archiving !== config.archiving) codes.push(config.archiving ? STATUS.LOGGING : STATUS.NOT_LOGGING);
        const notice = xml(
          "message",
          { type: "groupchat", from: target.jid, id: request.context.newId() },
          xml("x", { xmlns: NS.MUC_USER }, ...codes.map((code) => xml("status", { code: String(code) }))),
        );
        broadcastStanza(request, event.room, notice);
      }
      iq.room = event.room;
      return null;
    });
  },
};
