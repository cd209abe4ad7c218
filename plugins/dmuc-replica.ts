// DMUC2 (XEP-0282) replica role: with DMUC_LOCAL_DOMAIN set, this gateway serves its domain's users in
// remote rooms whose primary registers with it (docs/PROTOCOL.md). The logic is in src/core/dmuc/replica.ts.
import type { Plugin } from "../src/core/service.js";
import { replicaDiscoInfo, routeReplica, tickReplica } from "../src/core/dmuc/replica.js";
import type { ReplicaOptions } from "../src/core/dmuc/replica-util.js";

export function dmucReplicaPlugin(options: ReplicaOptions): Plugin {
  return {
    name: "dmuc-replica",
    register({ settings, hooks }) {
      if (!settings.localDomain) return;
      hooks.on("service/route", ({ request, to }) => routeReplica(request, to, options));
      hooks.on("service/tick", (tick) => tickReplica(tick, options));
      hooks.on("service/disco-info", ({ info }) => replicaDiscoInfo(settings, info));
    },
  };
}
