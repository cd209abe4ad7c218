// The shell's sources of time and fresh ids, handed to the pure core with each stanza.
import { randomBytes } from "node:crypto";
import type { EngineContext } from "../core/service.js";

/** Ids for stanza-id and occupant-id: 16 random bytes, URL-safe, unguessable across restarts. */
export function randomId(): string {
  return randomBytes(12).toString("base64url");
}

export function liveContext(): EngineContext {
  return { now: new Date(), newId: randomId };
}
