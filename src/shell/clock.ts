// The shell's sources of time and fresh ids, handed to the pure core with each stanza.
import { randomBytes } from "node:crypto";
import type { EngineContext } from "../core/service.js";

/** Ids for stanza-id and occupant-id: 12 random bytes, URL-safe, unguessable across restarts. */
export function randomId(): string {
  return randomBytes(12).toString("base64url");
}

/**
 * The shape of every id randomId() draws (16 URL-safe characters). Imported archive ids are kept out
 * of it (src/commands/import/mapping.ts), so that they never collide with the room's new ones.
 */
export const LIVE_ID_PATTERN = "^[A-Za-z0-9_-]{16}$";

export function liveContext(): EngineContext {
  return { now: new Date(), newId: randomId };
}
