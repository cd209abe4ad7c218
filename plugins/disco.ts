// XEP-0030 on the service domain: who we are (conference/text), what we support and the public
// rooms. Other plugins add features and nodes through the "service/disco-info"/"-items" hooks.
import type { Plugin } from "../src/core/service.js";
import { itemNotFound } from "../src/core/stanza-error.js";
import { buildDiscoInfo, buildDiscoItems } from "../src/xmpp/disco.js";
import { NS } from "../src/xmpp/stanza.js";

export const discoPlugin: Plugin = {
  name: "disco",
  register({ settings, hooks, serviceIq }) {
    hooks.on(
      "service/disco-info",
      ({ info }) => {
        info.identities.push({ category: "conference", type: "text", name: settings.name });
        for (const feature of [NS.DISCO_INFO, NS.DISCO_ITEMS, NS.MUC]) info.features.add(feature);
      },
      100,
    );

    serviceIq.get(NS.DISCO_INFO, "query", (request, query) => {
      const node = query.attrs.node;
      if (node) {
        const info = { identities: [], features: new Set<string>(), forms: [] };
        if (!hooks.fire("service/disco-node", { request, node, info })) throw itemNotFound("No such node");
        return buildDiscoInfo(info.identities, info.features, info.forms, node);
      }
      const info = { identities: [], features: new Set<string>(), forms: [] };
      hooks.fire("service/disco-info", { request, info });
      return buildDiscoInfo(info.identities, info.features, info.forms);
    });

    // XEP-0045 §6.3: the public rooms, with their names; hidden and locked (unconfigured) rooms are
    // not listed. Nodes (e.g. XEP-0050 commands) are answered by the plugin that owns them.
    hooks.on("service/disco-items", ({ request, node }) => {
      if (node !== undefined) return undefined;
      return [...request.state.rooms.values()]
        .filter((room) => room.config.public && !room.locked)
        .map((room) => ({ jid: room.jid, name: room.config.name || room.jid.split("@")[0] }));
    }, -100);

    serviceIq.get(NS.DISCO_ITEMS, "query", (request, query) => {
      const node = query.attrs.node || undefined;
      const items = hooks.fire("service/disco-items", { request, node });
      if (!items) throw itemNotFound("No such node");
      return buildDiscoItems(items, node);
    });
  },
};
