// Issue 15: a DMUC2 replica applies the limits the primary would apply to its own users' stanzas
// before relaying them, so that a flood or an oversized stanza from one of them costs neither the link,
// s2s nor the primary anything, and a split room (which the replica serves itself) is limited too.
//
// The stanzas the server module diverts to us are addressed to a remote room; the depth check of
// input-limits.ts runs first on them like on everything, then this hook, before the replica's handler:
// - the other input limits (size, children, bodies and subjects in code points, one per language),
//   with the same errors as for the rooms of this service;
// - the flood limits: entries, exits, nick changes and presence updates counted per session and per
//   user in that room exactly as for a room here (src/core/flood/limits.ts: refused, or coalesced and
//   relayed by the tick, the latest wins), messages and IQs by the user's bucket for that room
//   (DMUC_RATE_LIMIT, DMUC_RATE_BURST). A refusal is the service's usual one (wait/policy-violation,
//   answered at most once a second for presences, audited once per episode, the flood muted 100 ms).
import type { Plugin } from "../src/core/service.js";
import { StanzaError } from "../src/core/stanza-error.js";
import { admitMessage, admitPresence, DEFAULT_FLOOD_LIMITS, SENDING_TOO_FAST, TOO_MANY_ENTRIES } from "../src/core/flood/limits.js";
import { isLocalUser } from "../src/core/dmuc/replica-util.js";
import { bareString, jidToString } from "../src/xmpp/jid.js";
import { limitRefusal, type InputLimits } from "./input-limits.js";
import type { LimitOptions } from "./limits.js";

export function replicaLimitsPlugin(input: InputLimits, rate: LimitOptions): Plugin {
  return {
    name: "replica-limits",
    register({ settings, hooks }) {
      if (!settings.localDomain) return;
      const flood = settings.flood ?? DEFAULT_FLOOD_LIMITS;
      hooks.on(
        "service/route",
        ({ request, to }) => {
          // Only our users' stanzas to remote rooms (the replica refuses anyone else's itself).
          if (to.domain === settings.domain || to.domain === settings.localDomain || to.local === null) return undefined;
          if (!isLocalUser(settings, request.from)) return undefined;
          const { stanza } = request;
          if (stanza.attrs.type === "error") return undefined;
          const roomJid = `${to.local}@${to.domain}`;
          const refusal = limitRefusal(stanza, input);
          if (refusal) throw new StanzaError(refusal.spec.type, refusal.spec.condition, refusal.spec.text, { by: roomJid });
          // Netjoin catch-up and released updates were counted when they were sent.
          if (request.context.catchUp || request.context.floodReleased) return undefined;
          const now = request.context.now.getTime();
          if (stanza.name === "presence") {
            const copy = request.state.dmuc.replicated.get(roomJid);
            const admitted = admitPresence(request.state.floods, flood, {
              roomJid,
              room: copy && { sessionNicks: copy.local },
              stanza,
              fromFull: jidToString(request.from),
              fromBare: bareString(request.from),
              nick: to.resource,
              now,
            });
            if (admitted.verdict === "refuse") throw new StanzaError("wait", "policy-violation", TOO_MANY_ENTRIES, { by: roomJid });
            request.state = { ...request.state, floods: admitted.floods };
            // Held: the tick relays the latest one when the budgets allow (MucService.releaseCoalesced).
            return admitted.verdict === "coalesce" ? true : undefined;
          }
          const floods = admitMessage(request.state.floods, { ratePerSecond: rate.ratePerSecond, burst: rate.burst }, roomJid, bareString(request.from), now);
          if (!floods) throw new StanzaError("wait", "policy-violation", SENDING_TOO_FAST, { by: roomJid });
          request.state = { ...request.state, floods };
          return undefined;
        },
        // Right after the depth check (input-limits.ts), before the DMUC2 replica's handler.
        Number.MAX_SAFE_INTEGER - 1,
      );
    },
  };
}
