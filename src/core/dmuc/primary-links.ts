// The primary's replica links and the adapter layer: which remote domains run a DMUC2 replica
// (discovered with disco, cached with expiry), creating a link per room and replica, sending it the
// room state, and moving the domain's users onto it. Everything here is answers to our own IQs,
// joins that need a link, and timers; delivery itself is in primary-delivery.ts.
import xml, { type Element } from "@xmpp/xml";
import { audit, logEffect, send, type Effect } from "../effects.js";
import type { EngineContext, PluginApi, ServiceSettings, ServiceState } from "../service.js";
import type { Room } from "../room/types.js";
import { presenceVariants } from "../room/presence.js";
import { replayEntry } from "../room/history.js";
import { NS } from "../../xmpp/stanza.js";
import { buildReplicate, buildState, DMUC, parseReplicate, REPLICA_IDENTITY, type ReplicaConfig } from "./wire.js";
import type { DmucState, PendingQuery, ReplicaLink } from "./state.js";
import { withDomain, withLink, withoutLink, withoutPending, withPending } from "./dmuc-state.js";
import { domainOf, replicaSeesJids } from "./primary-delivery.js";
import { errorCondition, markSplit, netjoinAnswered, startNetjoin, UNREACHABLE } from "./primary-netsplit.js";
import { newStream } from "./link/stream.js";
import { linksOfDomain, MAX_LINKS_PER_DOMAIN } from "./primary-unreplicate.js";
import { endWait, enteredSince, enterSettled, handOverMissed, roomsWaitingFor, scheduleEnterRetry, sendSilentEnter } from "./primary-entry.js";
import { componentNotConnected, replicaGone } from "./primary-replica-down.js";

export interface PrimaryOptions {
  keepaliveSeconds: number;
  /** Unacknowledged link traffic, or a link IQ unanswered, this long splits the link (DMUC_LINK_TIMEOUT, ms). */
  linkTimeoutMs: number;
  /** How often a split replica is pinged to see it come back (DMUC_SPLIT_PING). */
  splitPingSeconds: number;
  /** Whether occupants behind a split link are shown away to the others meanwhile (DMUC_SPLIT_AWAY). */
  markAway: boolean;
  historyLimit: number;
  /** How long a discovery answer holds (ms). */
  domainTtlMs: number;
  /** How long discovery and the replicate request may take (ms): the first s2s contact with a domain. */
  queryTimeoutMs: number;
}

export const DEFAULT_PRIMARY_OPTIONS: PrimaryOptions = { keepaliveSeconds: 30, linkTimeoutMs: 5_000, splitPingSeconds: 5, markAway: true, historyLimit: 50, domainTtlMs: 10 * 60_000, queryTimeoutMs: 30_000 };

const STATE_CHUNK = 100;
/** How often a replica that is down (primary-replica-down.ts) is pinged to see it back (ms). */
const REPLICA_DOWN_PING_MS = 1_000;

/** The room settings a replica applies itself. */
export function replicaConfig(room: Room): ReplicaConfig {
  return { whois: room.config.whois, presenceBroadcast: [...room.config.presenceBroadcast], splitChat: room.config.splitChat };
}

/** What the link code needs from a stanza's request or a timer tick. */
export interface LinkIo {
  state: ServiceState;
  readonly settings: ServiceSettings;
  readonly context: EngineContext;
  readonly effects: Effect[];
}

function update(io: LinkIo, dmuc: DmucState): void {
  io.state = { ...io.state, dmuc };
}

function query(io: LinkIo, to: string, from: string, type: "get" | "set", payload: Element, pending: (sent: number) => PendingQuery): void {
  const id = io.context.newId();
  io.effects.push(send(xml("iq", { type, id, from, to }, payload)));
  update(io, withPending(io.state.dmuc, id, pending(io.context.now.getTime())));
}

/**
 * Remote domains whose users a primary would serve through a replica (not its own users: those of its
 * local domain, by default the parent of its own, as the configuration derives it).
 */
export function isRemoteUserDomain(settings: ServiceSettings, domain: string): boolean {
  const local = settings.localDomain ?? settings.domain.slice(settings.domain.indexOf(".") + 1);
  return domain !== settings.domain && domain !== local && !domain.endsWith(`.${settings.domain}`);
}

/** Called for each remote domain with a session in a room: probe it, or link the room to its replica. */
export function ensureReplica(io: LinkIo, roomJid: string, domain: string, options: PrimaryOptions): void {
  const now = io.context.now.getTime();
  const info = io.state.dmuc.domains.get(domain);
  if (!info || info.expires <= now) {
    update(io, withDomain(io.state.dmuc, domain, { status: "probing", expires: now + options.queryTimeoutMs * 2 }));
    query(io, domain, io.settings.domain, "get", xml("query", { xmlns: NS.DISCO_ITEMS }), (sent) => ({ kind: "disco-items", domain, sent }));
    io.effects.push(logEffect("debug", "dmuc.probe", { domain }));
    return;
  }
  if (info.status !== "dmuc" || !info.replicaJid) return;
  const links = io.state.dmuc.links.get(roomJid);
  if ([...(links?.values() ?? [])].some((l) => l.domain === domain)) return;
  // One remote domain may hold only so many links (primary-unreplicate.ts); past it, plain occupants.
  if (linksOfDomain(io.state.dmuc, domain) >= MAX_LINKS_PER_DOMAIN) {
    io.effects.push(logEffect("warn", "dmuc.domain_link_limit", { room: roomJid, domain, limit: MAX_LINKS_PER_DOMAIN }));
    return;
  }
  createLink(io, roomJid, domain, info.replicaJid, options);
}

function createLink(io: LinkIo, roomJid: string, domain: string, replicaJid: string, options: PrimaryOptions): void {
  const now = io.context.now.getTime();
  const link: ReplicaLink = {
    replicaJid,
    domain,
    state: "negotiating",
    keepaliveSeconds: options.keepaliveSeconds,
    historyLimit: options.historyLimit,
    members: new Set(),
    lastHeard: now,
    lastSent: now,
    stream: newStream(io.context.newId(), now),
  };
  update(io, withLink(io.state.dmuc, roomJid, link));
  const replicate = buildReplicate({ domain, keepaliveSeconds: options.keepaliveSeconds, historyLimit: options.historyLimit });
  query(io, replicaJid, roomJid, "set", replicate, (sent) => ({ kind: "replicate", roomJid, replicaJid, sent }));
  io.effects.push(logEffect("info", "dmuc.link_requested", { room: roomJid, replica: replicaJid, domain }));
}

/** Every occupant's presence as a replica gets it: with real JIDs when one of its users may see them. */
export function rosterForReplica(room: Room, link: ReplicaLink): Element[] {
  const viewer = replicaSeesJids(room, link) ? "moderator" : "participant";
  return [...room.occupants.values()].map((o) => presenceVariants(room, o).forViewer(viewer));
}

/** The room state a new replica gets (docs/PROTOCOL.md "Creating a replica link"). */
function stateChunks(room: Room, link: ReplicaLink): Element[] {
  const history = room.history.slice(-link.historyLimit).map((entry) => replayEntry(entry, room.jid));
  const items = [...rosterForReplica(room, link), ...history];
  const chunks: Element[] = [];
  for (let i = 0; i === 0 || i < items.length; i += STATE_CHUNK) {
    const slice = items.slice(i, i + STATE_CHUNK);
    const last = i + STATE_CHUNK >= items.length;
    chunks.push(
      buildState({
        last,
        config: i === 0 ? replicaConfig(room) : null,
        presences: slice.filter((e) => e.name === "presence"),
        history: slice.filter((e) => e.name === "message"),
        subject: last && room.subject ? room.subject : null,
      }),
    );
  }
  return chunks;
}

/** The replica accepted: send it the room, then move the domain's sessions onto it silently. */
function linkAccepted(io: LinkIo, roomJid: string, link: ReplicaLink, answer: Element): void {
  const accepted = parseReplicate(answer.getChild("replicate", DMUC));
  const room = io.state.rooms.get(roomJid);
  if (!room) {
    update(io, withoutLink(io.state.dmuc, roomJid, link.replicaJid));
    return;
  }
  const sessions = [...room.sessionNicks.keys()].filter((s) => domainOf(s) === link.domain);
  const active: ReplicaLink = {
    ...link,
    state: "active",
    keepaliveSeconds: accepted?.keepaliveSeconds ?? link.keepaliveSeconds,
    historyLimit: Math.min(accepted?.historyLimit ?? link.historyLimit, link.historyLimit),
    members: new Set(sessions),
    lastHeard: io.context.now.getTime(),
  };
  for (const chunk of stateChunks(room, active)) {
    query(io, link.replicaJid, roomJid, "set", chunk, (sent) => ({ kind: "link-iq", roomJid, replicaJid: link.replicaJid, sent }));
  }
  update(io, withLink(io.state.dmuc, roomJid, { ...active, lastSent: io.context.now.getTime() }));
  for (const session of sessions) sendSilentEnter(io, roomJid, link.replicaJid, session);
  // `entering`: the domain's entries that waited for this link; they go to the room right after.
  const entering = io.state.dmuc.entryWaits.get(roomJid)?.get(link.domain)?.held.size ?? 0;
  io.effects.push(logEffect("info", "dmuc.link_active", { room: roomJid, replica: link.replicaJid, sessions: sessions.length, entering }));
  io.effects.push(audit({ kind: "link.created", roomJid, actorJid: link.replicaJid, details: { domain: link.domain, sessions: sessions.length } }));
}

function discoIdentityMatches(answer: Element): boolean {
  const q = answer.getChild("query", NS.DISCO_INFO);
  if (!q) return false;
  const identity = q.getChildren("identity").some((i) => i.attrs.category === REPLICA_IDENTITY.category && i.attrs.type === REPLICA_IDENTITY.type);
  const feature = q.getChildren("feature").some((f) => f.attrs.var === DMUC);
  return identity && feature;
}

function domainSettled(io: LinkIo, domain: string, replicaJid: string | undefined, options: PrimaryOptions): void {
  const now = io.context.now.getTime();
  update(io, withDomain(io.state.dmuc, domain, replicaJid ? { status: "dmuc", replicaJid, expires: now + options.domainTtlMs } : { status: "plain", expires: now + options.domainTtlMs }));
  io.effects.push(logEffect("info", "dmuc.domain", { domain, replica: replicaJid ?? null }));
  if (!replicaJid) return;
  // Rooms with users of the domain, and rooms whose entries of the domain wait for this.
  const rooms = new Set(roomsWaitingFor(io.state, domain));
  for (const room of io.state.rooms.values()) {
    if ([...room.sessionNicks.keys()].some((s) => domainOf(s) === domain)) rooms.add(room.jid);
  }
  for (const roomJid of rooms) ensureReplica(io, roomJid, domain, options);
}

function nextCandidate(io: LinkIo, domain: string, candidates: readonly string[], options: PrimaryOptions): void {
  const [item, ...rest] = candidates;
  if (!item) return domainSettled(io, domain, undefined, options);
  const info = io.state.dmuc.domains.get(domain);
  if (info) update(io, withDomain(io.state.dmuc, domain, { ...info, candidates: rest }));
  // The replica identity is on the DMUC2 node (replicaDiscoInfo), not on the service's own disco#info.
  query(io, item, io.settings.domain, "get", xml("query", { xmlns: NS.DISCO_INFO, node: DMUC }), (sent) => ({ kind: "disco-info", domain, item, sent }));
}

/**
 * An answer (result or error) to one of the primary's IQs; `answer` is null on timeout. Returns false
 * when the query is not the primary's (the replica role handles its own).
 */
export function primaryAnswer(io: LinkIo, api: PluginApi, id: string, q: PendingQuery, answer: Element | null, options: PrimaryOptions): boolean {
  const ok = answer?.attrs.type === "result";
  const unreachable = answer === null || (!ok && UNREACHABLE.has(errorCondition(answer) ?? ""));
  switch (q.kind) {
    case "netjoin": {
      update(io, withoutPending(io.state.dmuc, id));
      const link = io.state.dmuc.links.get(q.roomJid)?.get(q.replicaJid);
      if (!link) return true;
      if (ok) netjoinAnswered(io, api, q.roomJid, q.replicaJid, answer!, options.markAway);
      else if (unreachable) update(io, withLink(io.state.dmuc, q.roomJid, { ...link, state: "split" }));
      else {
        // The replica lost the room (restarted without it): link again from the start.
        io.effects.push(logEffect("info", "dmuc.relink", { room: q.roomJid, replica: q.replicaJid }));
        update(io, withoutLink(io.state.dmuc, q.roomJid, q.replicaJid));
        createLink(io, q.roomJid, link.domain, q.replicaJid, options);
      }
      return true;
    }
    case "disco-items": {
      update(io, withoutPending(io.state.dmuc, id));
      const items = ok ? (answer!.getChild("query", NS.DISCO_ITEMS)?.getChildren("item") ?? []).map((i) => i.attrs.jid).filter((j): j is string => !!j) : [];
      nextCandidate(io, q.domain, items, options);
      return true;
    }
    case "disco-info": {
      update(io, withoutPending(io.state.dmuc, id));
      if (ok && discoIdentityMatches(answer!)) domainSettled(io, q.domain, q.item, options);
      else nextCandidate(io, q.domain, io.state.dmuc.domains.get(q.domain)?.candidates ?? [], options);
      return true;
    }
    case "replicate": {
      update(io, withoutPending(io.state.dmuc, id));
      const link = io.state.dmuc.links.get(q.roomJid)?.get(q.replicaJid);
      if (!link) return true;
      if (ok) {
        linkAccepted(io, q.roomJid, link, answer!);
        return true;
      }
      update(io, withoutLink(io.state.dmuc, q.roomJid, q.replicaJid));
      // A replica that answers with an error refuses this room for now (e.g. none of its users is in it
      // any more: it checks with its server): its domain stays DMUC2, and the next entry of one of its
      // users asks again. A replica that does not answer is taken as gone: the domain is served as plain.
      // Entries held since the request went may have made its check out of date: asked again at once.
      if (answer !== null && enteredSince(io.state, q.roomJid, link.domain, q.sent)) {
        io.effects.push(logEffect("info", "dmuc.link_asked_again", { room: q.roomJid, replica: q.replicaJid, answer: answer.toString() }));
        createLink(io, q.roomJid, link.domain, q.replicaJid, options);
        return true;
      }
      endWait(io, q.roomJid, link.domain);
      const domainInfo = io.state.dmuc.domains.get(link.domain);
      if (domainInfo && answer === null) update(io, withDomain(io.state.dmuc, link.domain, { status: "plain", expires: io.context.now.getTime() + options.domainTtlMs }));
      io.effects.push(logEffect("warn", "dmuc.link_refused", { room: q.roomJid, replica: q.replicaJid, answer: answer ? answer.toString() : "timeout" }));
      io.effects.push(audit({ kind: "dmuc.refused", roomJid: q.roomJid, actorJid: q.replicaJid, details: { step: "replicate", timeout: answer === null } }));
      return true;
    }
    case "link-iq": {
      update(io, withoutPending(io.state.dmuc, id));
      const link = io.state.dmuc.links.get(q.roomJid)?.get(q.replicaJid);
      if (link) update(io, withLink(io.state.dmuc, q.roomJid, { ...link, lastHeard: answer ? io.context.now.getTime() : link.lastHeard }));
      if (ok && q.session && q.snapshot) enterSettled(io, q.roomJid, q.session);
      const now = io.state.dmuc.links.get(q.roomJid)?.get(q.replicaJid);
      if (now && ok && now.state === "split") {
        startNetjoin(io, q.roomJid, now);
        return true;
      }
      if (now && answer && componentNotConnected(answer)) {
        replicaGone(io, q.roomJid, now, answer, options.markAway);
        return true;
      }
      if (now && unreachable) {
        markSplit(io, q.roomJid, now, answer ? `error ${errorCondition(answer)}` : "no answer", options.markAway);
        return true;
      }
      if (!q.session) return true;
      if (ok) return true;
      // The replica refused an ENTER or LEAVE: that session is served directly, from what the replica
      // did not deliver on; a refused ENTER is asked again later (primary-entry.ts).
      const current = io.state.dmuc.links.get(q.roomJid)?.get(q.replicaJid);
      if (current?.members.has(q.session)) {
        const members = new Set(current.members);
        members.delete(q.session);
        update(io, withLink(io.state.dmuc, q.roomJid, { ...current, members }));
      }
      const room = io.state.rooms.get(q.roomJid);
      const inRoom = room?.sessionNicks.has(q.session) === true;
      for (const stanza of q.fallback ?? []) if (inRoom || stanza.attrs.type === "unavailable") io.effects.push(send(stanza));
      let refusals = 0;
      if (q.snapshot && inRoom) {
        handOverMissed(io, q.roomJid, q.session, q.snapshot);
        if (current) refusals = scheduleEnterRetry(io, q.roomJid, q.replicaJid, q.session, options);
      } else if (q.snapshot) enterSettled(io, q.roomJid, q.session);
      io.effects.push(logEffect("warn", "dmuc.session_direct", { room: q.roomJid, replica: q.replicaJid, session: q.session, refusals, answer: answer ? answer.toString() : "timeout" }));
      // Audited once per session, not at every retry.
      if (refusals <= 1) io.effects.push(audit({ kind: "dmuc.refused", roomJid: q.roomJid, actorJid: q.replicaJid, details: { session: q.session, timeout: answer === null } }));
      return true;
    }
    default:
      return false;
  }
}

const DISCOVERY: ReadonlySet<PendingQuery["kind"]> = new Set(["disco-items", "disco-info", "replicate"]);

/**
 * Answers that never came count as errors: discovery and the replicate request within the query
 * timeout (the first s2s contact with a domain may take a while), everything on a link within the link
 * timeout. Split replicas are pinged to see them come back (keepalives of live links are the stream's
 * probes: primary-link-traffic.ts).
 */
export function primaryTick(io: LinkIo, api: PluginApi, options: PrimaryOptions): void {
  const now = io.context.now.getTime();
  for (const [id, q] of io.state.dmuc.pending) {
    const timeout = DISCOVERY.has(q.kind) ? options.queryTimeoutMs : options.linkTimeoutMs;
    if (now - q.sent >= timeout) primaryAnswer(io, api, id, q, null, options);
  }
  for (const [roomJid, links] of io.state.dmuc.links) {
    for (const link of links.values()) {
      // A replica its own server says is down is asked every second: that server answers at once (no
      // timeout to wait for), and the sooner the netjoin follows its return, the sooner its users leave
      // the direct service whose record (the netjoin's <served/>) lives in this process only.
      const every = link.replicaDown ? REPLICA_DOWN_PING_MS : options.splitPingSeconds * 1000;
      if (link.state !== "split" || now - link.lastSent < every) continue;
      query(io, link.replicaJid, roomJid, "get", xml("ping", { xmlns: NS.PING }), (sent) => ({ kind: "link-iq", roomJid, replicaJid: link.replicaJid, sent }));
      update(io, withLink(io.state.dmuc, roomJid, { ...link, lastSent: now }));
    }
  }
}

/** A room's configuration changed in a way replicas apply themselves (whois, presence broadcast). */
export function configToReplicas(io: LinkIo, room: Room): void {
  for (const link of io.state.dmuc.links.get(room.jid)?.values() ?? []) {
    if (link.state !== "active") continue;
    const state = buildState({ last: true, config: replicaConfig(room), presences: [], history: [], subject: null });
    query(io, link.replicaJid, room.jid, "set", state, (sent) => ({ kind: "link-iq", roomJid: room.jid, replicaJid: link.replicaJid, sent }));
  }
}
