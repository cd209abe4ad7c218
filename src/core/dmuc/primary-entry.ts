// The primary's side of entering while a link is set up (docs/PROTOCOL.md "Entering while the link is
// set up"; issue 9 point 7). An entry by a user of a remote domain whose DMUC2 status is unknown, or
// whose link to the room is being negotiated, is held: the room does not see it, nor anything else that
// session sends the room, until the set-up ends. Then it is handled as if it had just come: through the
// link when the replica accepted (the replica hands the user roster, history and subject: ENTER),
// directly when the domain has no replica. The wait is bounded (entryWaitMs); past it the entries are
// admitted directly and moved onto the link by a silent ENTER once it is up. An ENTER the replica
// refuses is asked again later (silent), the session served directly meanwhile; one it has not taken
// (in flight, or its answer lost in a split) keeps the session: a netjoin moves it again instead of
// taking it for gone.
import xml, { type Element } from "@xmpp/xml";
import { logEffect, send } from "../effects.js";
import type { PluginApi, ServiceRequest, ServiceState } from "../service.js";
import { presenceVariants, addressed } from "../room/presence.js";
import { replayEntry } from "../room/history.js";
import type { Room } from "../room/types.js";
import { NS } from "../../xmpp/stanza.js";
import { StanzaError } from "../stanza-error.js";
import { jidToString, type Jid } from "../../xmpp/jid.js";
import { buildEnter } from "./wire.js";
import type { DmucState, EntryWait, HeldSession, RoomSnapshot, UnconfirmedEnter } from "./state.js";
import { withLink, withPending } from "./dmuc-state.js";
import type { LinkIo, PrimaryOptions } from "./primary-links.js";
import { linksOfDomain, MAX_LINKS_PER_DOMAIN } from "./primary-unreplicate.js";

/**
 * How long an entry waits for its domain's link: one link timeout (DMUC_LINK_TIMEOUT) for each exchange
 * of a first contact (disco#items, disco#info, replicate). A domain slower than that is served directly
 * meanwhile, as a link that does not answer within the link timeout counts as split.
 */
export function entryWaitMs(options: PrimaryOptions): number {
  return 3 * options.linkTimeoutMs;
}

/**
 * Bounds on what waits, so that a remote server cannot fill memory through a slow set-up: stanzas held
 * per session (past it, `wait`/`resource-constraint`), sessions held per room and domain (past it, the
 * entry goes to the room at once, under the room's flood limits, and moves onto the link later).
 */
const MAX_HELD_STANZAS = 50;
const MAX_HELD_SESSIONS = 500;

/** The longest a refused ENTER waits before it is asked again (the backoff starts at DMUC_SPLIT_PING). */
const MAX_ENTER_RETRY_MS = 5 * 60_000;

/** Whether the link of `domain` for `roomJid` is still to be found or set up (an entry would wait for it). */
export function linkPending(state: ServiceState, roomJid: string, domain: string): boolean {
  const link = [...(state.dmuc.links.get(roomJid)?.values() ?? [])].find((l) => l.domain === domain);
  if (link) return link.state === "negotiating";
  // A domain known to have no replica is served directly even when that answer is old: it is asked
  // again in the background (ensureReplica, on the entry), and its users are moved if that changed.
  const status = state.dmuc.domains.get(domain)?.status;
  // A domain at its bound of links gets no new one (ensureReplica): its users enter as plain occupants.
  if (status === "dmuc" && linksOfDomain(state.dmuc, domain) >= MAX_LINKS_PER_DOMAIN) return false;
  return status !== "plain";
}

function withWait(dmuc: DmucState, roomJid: string, domain: string, wait: EntryWait | undefined): DmucState {
  const room = new Map(dmuc.entryWaits.get(roomJid) ?? []);
  if (wait) room.set(domain, wait);
  else room.delete(domain);
  const entryWaits = new Map(dmuc.entryWaits);
  if (room.size === 0) entryWaits.delete(roomJid);
  else entryWaits.set(roomJid, room);
  return { ...dmuc, entryWaits };
}

function withUnconfirmed(dmuc: DmucState, roomJid: string, session: string, enter: UnconfirmedEnter | undefined): DmucState {
  const room = new Map(dmuc.unconfirmedEnters.get(roomJid) ?? []);
  if (enter) room.set(session, enter);
  else room.delete(session);
  const unconfirmedEnters = new Map(dmuc.unconfirmedEnters);
  if (room.size === 0) unconfirmedEnters.delete(roomJid);
  else unconfirmedEnters.set(roomJid, room);
  return { ...dmuc, unconfirmedEnters };
}

/** An ENTER of `session` goes to `replicaJid`: unconfirmed until the replica takes it. */
export function withEnterInFlight(dmuc: DmucState, roomJid: string, session: string, replicaJid: string): DmucState {
  const before = dmuc.unconfirmedEnters.get(roomJid)?.get(session);
  return withUnconfirmed(dmuc, roomJid, session, { replicaJid, retryAt: null, refusals: before?.replicaJid === replicaJid ? before.refusals : 0 });
}

/** Whether the replica has not taken the ENTER of `session` (a netjoin must not take it for gone). */
export function enterUnconfirmed(state: ServiceState, roomJid: string, session: string): boolean {
  return state.dmuc.unconfirmedEnters.get(roomJid)?.has(session) === true;
}

function isEntry(stanza: Element, to: Jid, room: Room | undefined, session: string): room is Room {
  return (
    stanza.name === "presence" &&
    stanza.attrs.type === undefined &&
    to.resource !== null &&
    !!stanza.getChild("x", NS.MUC) &&
    // A new room is created by its first entry and is locked until configured: nothing to wait for.
    room !== undefined &&
    !room.locked &&
    !room.sessionNicks.has(session)
  );
}

/**
 * service/route, for a stanza from a user of a remote domain: holds an entry whose domain's link is
 * pending, and whatever a held session sends the room after it, in order. Returns the room whose entry
 * was held (the caller finds or sets up the link), or null.
 */
export function holdEntry(request: ServiceRequest, to: Jid, options: PrimaryOptions): string | null {
  const { stanza, from, settings } = request;
  if (stanza.attrs.type === "error" || to.domain !== settings.domain || to.local === null || from.resource === null) return null;
  const roomJid = `${to.local}@${to.domain}`;
  const session = jidToString(from);
  const domain = from.domain;
  const wait = request.state.dmuc.entryWaits.get(roomJid)?.get(domain);
  const held = wait?.held.get(session);
  if (wait && held) {
    if (held.stanzas.length >= MAX_HELD_STANZAS) throw new StanzaError("wait", "resource-constraint", "Entering this room is waiting for its link to your server");
    const more: HeldSession = { ...held, stanzas: [...held.stanzas, stanza] };
    request.state = { ...request.state, dmuc: withWait(request.state.dmuc, roomJid, domain, { ...wait, held: new Map(wait.held).set(session, more) }) };
    return roomJid;
  }
  const now = request.context.now.getTime();
  if (!isEntry(stanza, to, request.state.rooms.get(roomJid), session)) return null;
  // A wait that ran out lets the domain's later entries in directly until the set-up it waited for ends.
  if (wait && (now >= wait.until || wait.held.size >= MAX_HELD_SESSIONS)) return null;
  if (!linkPending(request.state, roomJid, domain)) return null;
  const next: EntryWait = { until: wait?.until ?? now + entryWaitMs(options), held: new Map(wait?.held ?? []).set(session, { since: now, stanzas: [stanza] }) };
  request.state = { ...request.state, dmuc: withWait(request.state.dmuc, roomJid, domain, next) };
  request.effects.push(logEffect("debug", "dmuc.entry_held", { room: roomJid, session, until: new Date(next.until).toISOString() }));
  return roomJid;
}

/** Whether some entry into `roomJid` waits for the link of `domain`. */
export function entriesWaiting(state: ServiceState, roomJid: string, domain: string): boolean {
  return (state.dmuc.entryWaits.get(roomJid)?.get(domain)?.held.size ?? 0) > 0;
}

/** Rooms with entries waiting for the link of `domain`. */
export function roomsWaitingFor(state: ServiceState, domain: string): string[] {
  return [...state.dmuc.entryWaits].filter(([roomJid]) => entriesWaiting(state, roomJid, domain)).map(([roomJid]) => roomJid);
}

/** Whether a held entry came after `time` (ms): a replica that refused a room before it may accept now. */
export function enteredSince(state: ServiceState, roomJid: string, domain: string, time: number): boolean {
  return [...(state.dmuc.entryWaits.get(roomJid)?.get(domain)?.held.values() ?? [])].some((h) => h.since > time);
}

/** Ends the wait of `domain`'s entries into `roomJid` now: the next settle admits them directly. */
export function endWait(io: LinkIo, roomJid: string, domain: string): void {
  const wait = io.state.dmuc.entryWaits.get(roomJid)?.get(domain);
  const now = io.context.now.getTime();
  if (wait && wait.until > now) io.state = { ...io.state, dmuc: withWait(io.state.dmuc, roomJid, domain, { ...wait, until: now }) };
}

/** Hands the room the held sessions' stanzas, in order, as if they came now; `keep`: the wait stays, ended. */
function release(io: LinkIo, api: PluginApi, roomJid: string, domain: string, keep: boolean): void {
  const wait = io.state.dmuc.entryWaits.get(roomJid)?.get(domain);
  if (!wait) return;
  io.state = { ...io.state, dmuc: withWait(io.state.dmuc, roomJid, domain, keep ? { until: wait.until, held: new Map() } : undefined) };
  if (wait.held.size === 0) return;
  const link = [...(io.state.dmuc.links.get(roomJid)?.values() ?? [])].find((l) => l.domain === domain);
  const via = link && link.state !== "negotiating" ? link.replicaJid : "direct";
  io.effects.push(logEffect("info", "dmuc.entries_released", { room: roomJid, domain, sessions: wait.held.size, via, waitedMs: io.context.now.getTime() - Math.min(...[...wait.held.values()].map((h) => h.since)) }));
  for (const held of wait.held.values()) {
    for (const stanza of held.stanzas) {
      const outcome = api.inject(io.state, stanza, io.context);
      io.state = outcome.state;
      io.effects.push(...outcome.effects);
    }
  }
}

/**
 * After every answer to the primary's queries and on every tick: entries whose link is no longer
 * pending (up, or the domain has no replica) or whose wait ran out go to the room. A wait that ran out
 * is kept, empty, while the set-up goes on (at most the time discovery may take), so that the domain's
 * later entries are not held again.
 */
export function settleEntries(io: LinkIo, api: PluginApi, options: PrimaryOptions): void {
  if (io.state.dmuc.entryWaits.size === 0) return;
  const now = io.context.now.getTime();
  for (const [roomJid, waits] of io.state.dmuc.entryWaits) {
    for (const [domain, wait] of waits) {
      const pending = io.state.rooms.get(roomJid) !== undefined && linkPending(io.state, roomJid, domain);
      if (!pending) release(io, api, roomJid, domain, false);
      else if (now >= wait.until && wait.held.size > 0) release(io, api, roomJid, domain, true);
      else if (now >= wait.until + 2 * options.queryTimeoutMs) io.state = { ...io.state, dmuc: withWait(io.state.dmuc, roomJid, domain, undefined) };
    }
  }
}

export function roomSnapshot(room: Room): RoomSnapshot {
  return { after: room.history.at(-1)?.stanzaId, occupants: room.occupants };
}

/** Moves a session the room serves directly onto the replica, which verifies it (silent ENTER). */
export function sendSilentEnter(io: LinkIo, roomJid: string, replicaJid: string, session: string): void {
  const room = io.state.rooms.get(roomJid);
  const nick = room?.sessionNicks.get(session);
  const link = io.state.dmuc.links.get(roomJid)?.get(replicaJid);
  if (!room || nick === undefined || !link) return;
  const id = io.context.newId();
  const now = io.context.now.getTime();
  io.effects.push(send(xml("iq", { type: "set", id, from: roomJid, to: replicaJid }, buildEnter({ jid: session, nick, silent: true, history: null, codes: [] }))));
  let dmuc = withPending(io.state.dmuc, id, { kind: "link-iq", roomJid, replicaJid, session, sent: now, snapshot: roomSnapshot(room) });
  dmuc = withEnterInFlight(dmuc, roomJid, session, replicaJid);
  dmuc = withLink(dmuc, roomJid, { ...link, members: new Set(link.members).add(session), lastSent: now });
  io.state = { ...io.state, dmuc };
}

/**
 * What went to the replica for `session` since its ENTER (counted the replica's from then), which the
 * replica did not deliver because it refused: the presences that changed and the messages since.
 */
export function handOverMissed(io: LinkIo, roomJid: string, session: string, snapshot: RoomSnapshot): void {
  const room = io.state.rooms.get(roomJid);
  const nick = room?.sessionNicks.get(session);
  const viewer = nick === undefined ? undefined : room!.occupants.get(nick);
  if (!room || !viewer) return;
  for (const occupant of room.occupants.values()) {
    if (occupant.nick === nick || snapshot.occupants.get(occupant.nick) === occupant) continue;
    io.effects.push(send(addressed(presenceVariants(room, occupant).forViewer(viewer.role), session)));
  }
  for (const gone of snapshot.occupants.keys()) {
    if (gone === nick || room.occupants.has(gone)) continue;
    io.effects.push(send(xml("presence", { from: `${room.jid}/${gone}`, to: session, type: "unavailable" }, xml("x", { xmlns: NS.MUC_USER }, xml("item", { affiliation: "none", role: "none" })))));
  }
  const index = snapshot.after === undefined ? -1 : room.history.findIndex((e) => e.stanzaId === snapshot.after);
  for (const entry of room.history.slice(index + 1)) io.effects.push(send(replayEntry(entry, room.jid, session)));
}

/** A refused ENTER of a session still in the room: asked again later, with backoff. Returns the refusals so far. */
export function scheduleEnterRetry(io: LinkIo, roomJid: string, replicaJid: string, session: string, options: PrimaryOptions): number {
  const before = io.state.dmuc.unconfirmedEnters.get(roomJid)?.get(session);
  const refusals = (before?.refusals ?? 0) + 1;
  const delay = Math.min(MAX_ENTER_RETRY_MS, options.splitPingSeconds * 1000 * 2 ** (refusals - 1));
  io.state = { ...io.state, dmuc: withUnconfirmed(io.state.dmuc, roomJid, session, { replicaJid, retryAt: io.context.now.getTime() + delay, refusals }) };
  return refusals;
}

/** The replica took the ENTER (or the session is gone): nothing more to do for it. */
export function enterSettled(io: LinkIo, roomJid: string, session: string): void {
  if (enterUnconfirmed(io.state, roomJid, session)) io.state = { ...io.state, dmuc: withUnconfirmed(io.state.dmuc, roomJid, session, undefined) };
}

/** On every tick: refused ENTERs due again are sent again (silent), while the session stays and the link is up. */
export function retryEnters(io: LinkIo): void {
  if (io.state.dmuc.unconfirmedEnters.size === 0) return;
  const now = io.context.now.getTime();
  for (const [roomJid, enters] of io.state.dmuc.unconfirmedEnters) {
    for (const [session, enter] of enters) {
      const link = io.state.dmuc.links.get(roomJid)?.get(enter.replicaJid);
      if (!link || !io.state.rooms.get(roomJid)?.sessionNicks.has(session)) {
        enterSettled(io, roomJid, session);
        continue;
      }
      // In flight, or the link split: the netjoin moves the domain's sessions onto the replica anyway.
      if (enter.retryAt === null || now < enter.retryAt || link.state !== "active" || link.members.has(session)) continue;
      sendSilentEnter(io, roomJid, enter.replicaJid, session);
      io.effects.push(logEffect("info", "dmuc.enter_again", { room: roomJid, replica: enter.replicaJid, session, refusals: enter.refusals }));
    }
  }
}
