// XEP-0199: the service answers pings, so servers and clients can check it is alive.
import type { Plugin } from "../src/core/service.js";
import { NS } from "../src/xmpp/stanza.js";

export const pingPlugin: Plugin = {
  name: "ping",
  register({ hooks, serviceIq }) {
    hooks.on("service/disco-info", ({ info }) => {
      info.features.add(NS.PING);
    });
    serviceIq.get(NS.PING, "ping", () => null);
  },
};
