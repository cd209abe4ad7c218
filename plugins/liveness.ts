// Ghost occupants (issue 10): the room pings its occupants' sessions after every (re)connection of
// the component and once per interval, and removes the sessions that are gone (src/core/liveness.ts).
// A removal goes through the room engine as the presence bounce it amounts to, so that everyone sees
// what Prosody shows for a bounce: unavailable with status 333 and "Kicked: <condition>".
// As a DMUC2 replica, the gateway verifies the local sessions it serves in remote rooms too; the bounce
// of a gone one takes the way of any local user's stanza to the room: the replica submits it to the
// primary on the link, which removes the session as it removes any that bounces (and sends <leave/>).
// While the room is split the replica serves it alone: the gone session leaves there as with an
// unavailable presence, and the netjoin answer, which lists the replica's occupants, no longer has it.
import xml, { type Element } from "@xmpp/xml";
import type { Effect } from "../src/core/effects.js";
import type { EngineContext, Plugin, PluginApi, ServiceState } from "../src/core/service.js";
import {
  checkAnswered,
  DEFAULT_LIVENESS_OPTIONS,
  errorConditionOf,
  livenessTick,
  meansGone,
  verifyEveryone,
  verifySession,
  withoutCheck,
  type LivenessOptions,
  type SessionRef,
} from "../src/core/liveness.js";
import { jidToString } from "../src/xmpp/jid.js";
import { NS } from "../src/xmpp/stanza.js";

/** The bounce a gone session amounts to, handled by the room engine like one from the network. */
function goneBounce(ref: SessionRef, condition: string, text: string | undefined): Element {
  return xml(
    "presence",
    { type: "error", from: ref.jid, to: ref.roomJid },
    xml("error", { type: "cancel" }, xml(condition, { xmlns: NS.STANZAS }), text ? xml("text", { xmlns: NS.STANZAS }, text) : null),
  );
}

/** A gone session of a split replicated room: it leaves the replica's copy as with an unavailable presence. */
function leftDuringSplit(state: ServiceState, ref: SessionRef): Element | null {
  const room = state.dmuc.replicated.get(ref.roomJid);
  const nick = room?.local.get(ref.jid);
  if (!room || room.splitSince === null || nick === undefined) return null;
  return xml("presence", { type: "unavailable", from: ref.jid, to: `${ref.roomJid}/${nick}` });
}

function remove(api: PluginApi, state: ServiceState, ref: SessionRef, condition: string, text: string | undefined, context: EngineContext, effects: Effect[]): ServiceState {
  const stanza = (ref.replica !== undefined && leftDuringSplit(state, ref)) || goneBounce(ref, condition, text);
  const outcome = api.inject(state, stanza, context);
  effects.push(...outcome.effects);
  return outcome.state;
}

export function livenessPlugin(options: Partial<LivenessOptions> = {}): Plugin {
  const settings: LivenessOptions = { ...DEFAULT_LIVENESS_OPTIONS, ...options };
  return {
    name: "liveness",
    register(api) {
      const { hooks } = api;
      // The replica's own address pings the sessions it serves: their answers stay on their server.
      const replica = api.settings.localDomain ? api.settings.domain : undefined;
      hooks.on("service/online", (event) => {
        event.state = verifyEveryone(event.state, replica);
      });

      hooks.on("service/tick", (tick) => {
        const { state, timedOut } = livenessTick(tick.state, tick.context.now.getTime(), tick.context.newId, settings, tick.effects, replica);
        tick.state = state;
        for (const check of timedOut) {
          tick.state = remove(api, tick.state, check, "remote-server-timeout", "No answer to the room's ping", tick.context, tick.effects);
        }
      });

      // Answers to our pings come first: they are for the room, not for an occupant.
      hooks.on(
        "service/route",
        ({ request }) => {
          const from = jidToString(request.from);
          const answer = checkAnswered(request.state, request.stanza, from);
          if (!answer) {
            // An IQ bounce from an occupant's session (an answer to a relayed IQ) may come from a client
            // that only lacks the feature: it is not removed at once, but verified with a ping.
            const { stanza } = request;
            if (stanza.name === "iq" && stanza.attrs.type === "error" && meansGone(stanza)) {
              const roomJid = (stanza.attrs.to ?? "").split("/")[0]!.toLowerCase();
              if (request.state.rooms.get(roomJid)?.sessionNicks.has(from)) request.state = verifySession(request.state, { roomJid, jid: from });
            }
            return undefined;
          }
          request.state = withoutCheck(request.state, answer.id);
          const { stanza } = request;
          if (stanza.attrs.type === "error" && meansGone(stanza)) {
            const text = stanza.getChild("error")?.getChildText("text", NS.STANZAS) ?? undefined;
            request.state = remove(api, request.state, answer.check, errorConditionOf(stanza) ?? "undefined-condition", text, request.context, request.effects);
          }
          return true;
        },
        100,
      );
    },
  };
}
