// XEP-0030 on the service domain: who we are (conference/text) and what we support. Other plugins
// add their features through the "service/disco-info" hook.
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
      if (query.attrs.node) throw itemNotFound("No such node");
      const info = { identities: [], features: new Set<string>(), forms: [] };
      hooks.fire("service/disco-info", { request, info });
      return buildDiscoInfo(info.identities, info.features, info.forms);
    });

    serviceIq.get(NS.DISCO_ITEMS, "query", (_request, query) => {
      if (query.attrs.node) throw itemNotFound("No such node");
      return buildDiscoItems([]);
    });
  },
};
