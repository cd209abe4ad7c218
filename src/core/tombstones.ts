// Tombstones of destroyed rooms (Prosody's muc_tombstones): a persistent room that its owner or an
// administrator destroyed answers entries for a while with <gone/> (RFC 6120 §8.3.3.5: the new address
// as the element's text, here the alternate venue of the <destroy/> as an XMPP URI) instead of being
// created again by the first comer, so that its users follow it to its new place.
import type { Effect } from "./effects.js";
import type { ServiceState } from "./service.js";
import type { StoreWrite } from "./store-writes.js";

export interface Tombstone {
  readonly roomJid: string;
  readonly reason: string | null;
  readonly alternateVenue: string | null;
  readonly expiresAt: Date;
}

export type TombstoneWrite = Extract<StoreWrite, { op: "tombstone.save" }>;

/** The state with the tombstones that `effects` store (a destruction just handled) added. */
export function withStoredTombstones(state: ServiceState, effects: readonly Effect[]): ServiceState {
  const writes = effects.flatMap((e) => (e.kind === "store" && e.write.op === "tombstone.save" ? [e.write] : []));
  if (writes.length === 0) return state;
  const tombstones = new Map(state.tombstones ?? []);
  for (const w of writes) tombstones.set(w.roomJid, { roomJid: w.roomJid, reason: w.reason, alternateVenue: w.alternateVenue, expiresAt: w.expiresAt });
  return { ...state, tombstones };
}

export function withoutTombstone(state: ServiceState, roomJid: string): ServiceState {
  if (!state.tombstones?.has(roomJid)) return state;
  const tombstones = new Map(state.tombstones);
  tombstones.delete(roomJid);
  return { ...state, tombstones };
}
