// DMUC2 (XEP-0282) replica role: with DMUC_LOCAL_DOMAIN set, this gateway serves its domain's users in
// remote rooms whose primary registers with it (docs/PROTOCOL.md). The logic is in src/core/dmuc/replica.ts.
import type { Plugin } from "../src/core/service.js";
import { replicaDiscoInfo, routeReplica, tickReplica } from "../src/core/dmuc/replica.js";
import type { ReplicaOptions } from "../src/core/dmuc/replica-util.js";
import { linkStateWrites, localSessionWrites } from "../src/core/dmuc/replica-records.js";
import { DMUC } from "../src/core/dmuc/wire.js";

export function dmucReplicaPlugin(options: ReplicaOptions): Plugin {
  return {
    name: "dmuc-replica",
    register({ settings, hooks }) {
      if (!settings.localDomain) return;
      // Every change to whom we serve, and to the link's streams and queue, is written down (replica-records.ts).
      hooks.on("service/route", ({ request, to }) => {
        const before = request.state.dmuc.replicated;
        const taken = routeReplica(request, to, options);
        localSessionWrites(before, request.state.dmuc.replicated, request.effects);
        linkStateWrites(before, request.state.dmuc.replicated, request.effects);
        return taken;
      });
      hooks.on("service/tick", (tick) => {
        const before = tick.state.dmuc.replicated;
        tickReplica(tick, options);
        localSessionWrites(before, tick.state.dmuc.replicated, tick.effects);
        linkStateWrites(before, tick.state.dmuc.replicated, tick.effects);
      });
      hooks.on("service/disco-info", ({ info }) => {
        replicaDiscoInfo(settings, info);
      });
      hooks.on("service/disco-node", ({ node, info }) => (node === DMUC && replicaDiscoInfo(settings, info, node) ? true : undefined));
    },
  };
}
