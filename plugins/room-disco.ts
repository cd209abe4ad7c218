// XEP-0045 §6.4-§6.5: disco#info on a room (identity, muc_* features, the muc#roominfo form with the
// occupant count) and disco#items (occupants, only in rooms whose occupants anyone may see).
import xml from "@xmpp/xml";
import type { DiscoInfo, Plugin } from "../src/core/service.js";
import { itemNotFound } from "../src/core/stanza-error.js";
import { buildDiscoInfo, buildDiscoItems } from "../src/xmpp/disco.js";
import { buildForm } from "../src/xmpp/forms.js";
import { NS } from "../src/xmpp/stanza.js";

export const roomDiscoPlugin: Plugin = {
  name: "room-disco",
  register({ rooms }) {
    rooms.hooks.on(
      "room/disco-info",
      ({ room, info }) => {
        info.identities.push({ category: "conference", type: "text", name: room.config.name || room.jid.split("@")[0] });
        info.features.add(NS.MUC).add(NS.MUC_STABLE_ID).add(NS.OCCUPANT_ID).add(NS.STANZA_ID).add(NS.DISCO_INFO).add(NS.DISCO_ITEMS);
        info.features.add(room.config.persistent ? "muc_persistent" : "muc_temporary");
        info.features.add(room.config.public ? "muc_public" : "muc_hidden");
        info.features.add(room.config.moderated ? "muc_moderated" : "muc_unmoderated");
        info.features.add(room.config.whois === "anyone" ? "muc_nonanonymous" : "muc_semianonymous");
        info.forms.push(
          buildForm({
            type: "result",
            formType: NS.MUC_ROOMINFO,
            fields: [
              { var: "muc#roominfo_description", label: "Description", values: [room.config.description] },
              { var: "muc#roominfo_occupants", label: "Number of occupants", values: [String(room.occupants.size)] },
              { var: "muc#roominfo_subject", label: "Subject", values: [room.subject?.text ?? ""] },
              { var: "muc#roominfo_lang", label: "Language", values: [room.config.language] },
              { var: "muc#roomconfig_roomname", label: "Title", values: [room.config.name] },
            ],
          }),
        );
      },
      100,
    );

    rooms.iq.get(NS.DISCO_INFO, "query", ({ request, target }, query) => {
      const node = query.attrs.node;
      if (node) {
        const info: DiscoInfo = { identities: [], features: new Set(), forms: [] };
        if (!rooms.hooks.fire("room/disco-node", { request, room: target, node, info })) throw itemNotFound("No such node");
        return buildDiscoInfo(info.identities, info.features, info.forms, node);
      }
      const info: DiscoInfo = { identities: [], features: new Set(), forms: [] };
      rooms.hooks.fire("room/disco-info", { request, room: target, info });
      return buildDiscoInfo(info.identities, info.features, info.forms);
    });

    rooms.iq.get(NS.DISCO_ITEMS, "query", ({ target }, query) => {
      if (query.attrs.node) throw itemNotFound("No such node");
      if (target.config.whois !== "anyone" && !target.config.public) return xml("query", { xmlns: NS.DISCO_ITEMS });
      return buildDiscoItems([...target.occupants.keys()].map((nick) => ({ jid: `${target.jid}/${nick}` })));
    });
  },
};
