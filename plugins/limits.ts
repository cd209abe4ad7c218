// Bad input and floods (issue 3): message bodies over DMUC_MAX_BODY_CHARS are refused, and one
// occupant sending faster than DMUC_RATE_LIMIT stanzas per second (beyond a burst of DMUC_RATE_BURST)
// gets policy-violation, so a flood from one session cannot starve the others. Like Prosody's
// mod_muc_limits, the bucket refills continuously; time comes from the engine context.
import type { Plugin } from "../src/core/service.js";
import { StanzaError } from "../src/core/stanza-error.js";
import type { TokenBucket } from "../src/core/room/types.js";

export interface LimitOptions {
  maxBodyChars: number;
  ratePerSecond: number;
  burst: number;
}

/** The bucket after refilling to `now` and taking one token, or null when it is empty. */
export function takeToken(bucket: TokenBucket | undefined, now: number, options: LimitOptions): TokenBucket | null {
  const start = bucket ?? { tokens: options.burst, at: now };
  const refilled = Math.min(options.burst, start.tokens + (Math.max(0, now - start.at) / 1000) * options.ratePerSecond);
  return refilled >= 1 ? { tokens: refilled - 1, at: now } : null;
}

export function limitsPlugin(options: LimitOptions): Plugin {
  return {
    name: "limits",
    register({ rooms }) {
      rooms.hooks.on(
        "room/stanza",
        (event) => {
          const { request, room, occupant } = event;
          if (!occupant) return undefined; // entering is limited by the room's own checks
          if (request.context.catchUp) return undefined; // netjoin hands over what was already sent, at its own pace
          const bucket = takeToken(room.throttle.get(request.fromFull), request.context.now.getTime(), options);
          if (!bucket) return new StanzaError("wait", "policy-violation", "You are sending too fast; wait a moment", { by: room.jid });
          event.room = { ...room, throttle: new Map(room.throttle).set(request.fromFull, bucket) };
          return undefined;
        },
        100,
      );
      rooms.hooks.on("room/stanza", ({ request, room }) => {
        const body = request.stanza.name === "message" ? request.stanza.getChildText("body") : null;
        if (body !== null && [...body].length > options.maxBodyChars) {
          return new StanzaError("modify", "policy-violation", `Message bodies are limited to ${options.maxBodyChars} characters`, { by: room.jid });
        }
        return undefined;
      });
      rooms.hooks.on("occupant/left", (event) => {
        if (!event.room.throttle.size) return;
        const throttle = new Map(event.room.throttle);
        for (const jid of event.occupant.sessions.keys()) throttle.delete(jid);
        event.room = { ...event.room, throttle };
      });
    },
  };
}
