// Floods (issue 3): one occupant sending faster than DMUC_RATE_LIMIT stanzas per second (beyond a burst
// of DMUC_RATE_BURST) gets policy-violation, so a flood from one user cannot starve the others. Like
// Prosody's mod_muc_limits, the bucket refills continuously; time comes from the engine context.
// The bucket is the user's (bare JID), shared by all its sessions, and it outlives leaving the room
// until it is full again (issue 16 point 6): neither more sessions nor leaving and coming back buys
// more. Sizes and body lengths are checked at the edge (input-limits.ts).
import type { Plugin } from "../src/core/service.js";
import { StanzaError } from "../src/core/stanza-error.js";
import type { TokenBucket } from "../src/core/room/types.js";
import { SENDING_TOO_FAST } from "../src/core/flood/limits.js";

export interface LimitOptions {
  ratePerSecond: number;
  burst: number;
}

/** The bucket after refilling to `now` and taking one token, or null when it is empty. */
export function takeToken(bucket: TokenBucket | undefined, now: number, options: LimitOptions): TokenBucket | null {
  const start = bucket ?? { tokens: options.burst, at: now };
  const refilled = Math.min(options.burst, start.tokens + (Math.max(0, now - start.at) / 1000) * options.ratePerSecond);
  return refilled >= 1 ? { tokens: refilled - 1, at: now } : null;
}

function isFull(bucket: TokenBucket, now: number, options: LimitOptions): boolean {
  return bucket.tokens + (Math.max(0, now - bucket.at) / 1000) * options.ratePerSecond >= options.burst;
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
          const bucket = takeToken(room.throttle.get(occupant.bareJid), request.context.now.getTime(), options);
          if (!bucket) return new StanzaError("wait", "policy-violation", SENDING_TOO_FAST, { by: room.jid });
          event.room = { ...room, throttle: new Map(room.throttle).set(occupant.bareJid, bucket) };
          return undefined;
        },
        100,
      );
      // Buckets that have filled up again are forgotten when someone leaves (a full bucket is the same
      // as none); the others are kept, so that leaving does not reset them.
      rooms.hooks.on("occupant/left", (event) => {
        if (!event.room.throttle.size) return;
        const now = event.request.context.now.getTime();
        const throttle = new Map([...event.room.throttle].filter(([, bucket]) => !isFull(bucket, now, options)));
        if (throttle.size !== event.room.throttle.size) event.room = { ...event.room, throttle };
      });
    },
  };
}
