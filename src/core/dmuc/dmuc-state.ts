// Immutable updates of DmucState, shared by the primary and replica roles.
import type { DmucState, DomainInfo, PendingQuery, ReplicaLink } from "./state.js";

export function withLink(dmuc: DmucState, roomJid: string, link: ReplicaLink): DmucState {
  const room = new Map(dmuc.links.get(roomJid) ?? []).set(link.replicaJid, link);
  return { ...dmuc, links: new Map(dmuc.links).set(roomJid, room) };
}

export function withoutLink(dmuc: DmucState, roomJid: string, replicaJid: string): DmucState {
  const room = new Map(dmuc.links.get(roomJid) ?? []);
  room.delete(replicaJid);
  const links = new Map(dmuc.links);
  if (room.size === 0) links.delete(roomJid);
  else links.set(roomJid, room);
  return { ...dmuc, links };
}

export function withoutRoomLinks(dmuc: DmucState, roomJid: string): DmucState {
  if (!dmuc.links.has(roomJid)) return dmuc;
  const links = new Map(dmuc.links);
  links.delete(roomJid);
  return { ...dmuc, links };
}

export function withDomain(dmuc: DmucState, domain: string, info: DomainInfo): DmucState {
  return { ...dmuc, domains: new Map(dmuc.domains).set(domain, info) };
}

export function withPending(dmuc: DmucState, id: string, query: PendingQuery): DmucState {
  return { ...dmuc, pending: new Map(dmuc.pending).set(id, query) };
}

export function withoutPending(dmuc: DmucState, id: string): DmucState {
  const pending = new Map(dmuc.pending);
  pending.delete(id);
  return { ...dmuc, pending };
}

/** The link with `session` counted among those that got the message `stanzaId` directly (or no longer, with `served` false). */
export function withServed(link: ReplicaLink, stanzaId: string, copyId: string | undefined, session: string, served = true): ReplicaLink {
  const before = link.served?.get(stanzaId);
  const sessions = new Set(before?.sessions ?? []);
  if (served) sessions.add(session);
  else sessions.delete(session);
  const map = new Map(link.served ?? []).set(stanzaId, { copyId: before?.copyId ?? copyId, sessions });
  return { ...link, served: map };
}

/** The most ids of copies sent again that a link remembers (they matter only until the next netjoin). */
const MAX_RESENT = 500;

/** The link with the copy `id` counted as sent more than once. */
export function withResent(link: ReplicaLink, id: string): ReplicaLink {
  if (link.resent?.has(id)) return link;
  const ids = [...(link.resent ?? []), id];
  return { ...link, resent: new Set(ids.slice(Math.max(0, ids.length - MAX_RESENT))) };
}
