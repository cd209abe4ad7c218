// The DMUC2 replica role (docs/PROTOCOL.md, XEP-0282): this gateway serves the users of its
// DMUC_LOCAL_DOMAIN in remote rooms. It takes, before normal routing, (1) control IQs and broadcasts
// from the rooms that registered with it, (2) the server module's answers to its queries and (3) the
// local users' stanzas that the module diverts to it, which it relays to the primary. While a room's
// link is split it serves those users itself until the primary's netjoin (replica-split.ts).
import xml, { type Element } from "@xmpp/xml";
import { cloneElement } from "../../xmpp/element.js";
import { audit, logEffect, send } from "../effects.js";
import type { DiscoInfo, ServiceRequest, ServiceSettings } from "../service.js";
import { iqPayload, iqResult, NS } from "../../xmpp/stanza.js";
import { bareString, type Jid } from "../../xmpp/jid.js";
import type { ReplicatedRoom } from "./state.js";
import { buildReplicate, buildResync, DMUC, REPLICA_IDENTITY, parseDirectedAnswer, parseReplicate, parseState } from "./wire.js";
import { appendHistory, historyEntry, cleaned, ignoreFromRoom, onMessageBroadcast, onPresenceBroadcast } from "./replica-fanout.js";
import { expireDirected, finishEnter, onEnter, onLeave } from "./replica-enter.js";
import { DIRECTED_TIMEOUT_MS, sendDivert, getRoom, isLocalUser, MIN_KEEPALIVE_SECONDS, MODULE_IQ_TIMEOUT_MS, putRoom, refuse, saveReplica, setPending, SPLIT_PING_MS, SPLIT_TIMEOUT_MS, touch, type ReplicaOptions, type Work } from "./replica-util.js";
import { errorCondition, isSplit, markSplit, onNetjoin, onSplitDiverted, pingRoom, relayToPrimary, SPLIT_CONDITIONS } from "./replica-split.js";

/** The "service/route" handler: true when the stanza was the replica's. */
export function routeReplica(request: ServiceRequest, to: Jid, options: ReplicaOptions): true | undefined {
  const { settings, stanza, from } = request;
  if (!settings.localDomain) return undefined;
  if (to.domain !== settings.domain) return onDiverted(request, to, options);
  if (to.local !== null || to.resource !== null) return undefined;
  if (stanza.name === "iq") return onIq(request, options);
  const room = from.local !== null ? getRoom(request, bareString(from)) : undefined;
  if (!room) {
    // Broadcast-like stanzas from a room that did not register with us (or no longer has a link).
    const broadcast = (stanza.name === "message" && stanza.attrs.type === "groupchat") || (stanza.name === "presence" && !!stanza.getChild("x", NS.MUC_USER));
    return broadcast && from.local !== null ? refuse(request, stanza, "broadcast from an unregistered room", { roomJid: bareString(from) }) : undefined;
  }
  touch(request, room.roomJid, { heard: true });
  const current = getRoom(request, room.roomJid)!;
  if (stanza.attrs.type === "error") {
    // A bounce from the room's JID: the room's server cannot be reached (XEP-0282 §Netsplit).
    markSplit(request, current, `${stanza.name} bounced`, errorCondition(stanza), options.splitAway !== false);
  } else if (stanza.name === "presence" && from.resource !== null) {
    onPresenceBroadcast(request, current, stanza, from.resource);
  } else if (stanza.name === "message" && stanza.attrs.type === "groupchat") {
    onMessageBroadcast(request, current, stanza);
  } else {
    ignoreFromRoom(request, current, stanza);
  }
  return true;
}

function onIq(request: ServiceRequest, options: ReplicaOptions): true | undefined {
  const { stanza, from } = request;
  const type = stanza.attrs.type;
  if (type === "result" || type === "error") return onAnswer(request, options);
  const payload = iqPayload(stanza);
  const room = from.local !== null && from.resource === null ? getRoom(request, bareString(from)) : undefined;
  if (payload?.is("ping", NS.PING) && room) {
    touch(request, room.roomJid, { heard: true, sent: true });
    request.effects.push(send(iqResult(stanza)));
    return true;
  }
  if (!payload || payload.attrs.xmlns !== DMUC) return undefined;
  if (type === "set" && payload.name === "replicate") return onReplicate(request, payload, options);
  if (!room && type === "set" && payload.name === "netjoin" && from.local !== null && from.resource === null) {
    // A room we do not have (lost, e.g. restarted without it): the primary links again from the start.
    return refuse(request, stanza, "netjoin for a room we do not replicate", { roomJid: bareString(from), spec: { type: "cancel", condition: "item-not-found" } });
  }
  // Control stanzas only from the bare JID of a room that registered us (s2s vouches for its domain).
  if (!room) return refuse(request, stanza, "control stanza from an unregistered room", { roomJid: from.local !== null ? bareString(from) : null });
  touch(request, room.roomJid, { heard: true });
  const current = getRoom(request, room.roomJid)!;
  if (type === "set" && payload.name === "state") onState(request, current, payload);
  else if (type === "set" && payload.name === "enter") onEnter(request, current, stanza, payload);
  else if (type === "set" && payload.name === "leave") onLeave(request, current, stanza, payload);
  else if (type === "set" && payload.name === "netjoin") onNetjoin(request, current, stanza, payload);
  else return refuse(request, stanza, "unknown dmuc request", { roomJid: room.roomJid, spec: { type: "cancel", condition: "feature-not-implemented" } });
  if (request.effects.some((e) => e.kind === "send" && e.stanza.attrs.to === room.primaryJid)) touch(request, room.roomJid, { sent: true });
  return true;
}

/** Answers to our own IQs: the module's <directed/> answers, <divert/> acks, keepalive pongs. */
function onAnswer(request: ServiceRequest, options: ReplicaOptions): true | undefined {
  const { stanza, from, settings } = request;
  const id = stanza.attrs.id ?? "";
  const query = request.state.dmuc.pending.get(id);
  const fromModule = from.local === null && from.resource === null && from.domain === settings.localDomain;
  const failed = stanza.attrs.type === "error";
  const condition = failed ? errorCondition(stanza) : null;
  if (query?.kind === "directed" && fromModule) {
    // A server without mod_dmuc_replica answers the question itself: it does not know it.
    const noModule = failed && (condition === "service-unavailable" || condition === "feature-not-implemented");
    finishEnter(request, id, query, noModule ? "no-module" : failed ? null : parseDirectedAnswer(stanza.getChild("directed", DMUC)), options);
    return true;
  }
  if (query?.kind === "replica-iq" && fromModule) {
    setPending(request, id, null);
    if (failed) request.effects.push(logEffect("warn", "dmuc.module_error", { room: query.roomJid, condition }));
    return true;
  }
  if (query?.kind === "relay" && fromModule) {
    setPending(request, id, null);
    if (!failed) return true;
    const room = getRoom(request, query.roomJid);
    // The module could not send the user's stanza on to the room's server: the link is split.
    if (room && condition && SPLIT_CONDITIONS.has(condition)) markSplit(request, room, "relay bounced", condition, options.splitAway !== false);
    else request.effects.push(logEffect("warn", "dmuc.relay_failed", { id, room: query.roomJid, condition }));
    return true;
  }
  if (query) return undefined; // another role's query
  const room = from.local !== null ? getRoom(request, bareString(from)) : undefined;
  if (room && (from.resource === null || failed)) {
    touch(request, room.roomJid, { heard: true });
    // Our pings are the only IQs we send the room: an error saying its server is unreachable is a split.
    if (failed && condition && SPLIT_CONDITIONS.has(condition)) markSplit(request, getRoom(request, room.roomJid)!, "ping bounced", condition, options.splitAway !== false);
    else if (failed) request.effects.push(logEffect("warn", "dmuc.link_error", { room: room.roomJid, condition }));
    // The room answers again while we are split: ask it for netjoin (it may not know of the split,
    // e.g. after its own restart).
    else if (isSplit(room)) request.effects.push(send(xml("iq", { type: "set", id: request.context.newId(), from: settings.domain, to: room.primaryJid }, buildResync())));
    return true;
  }
  if (fromModule) {
    // Relays to rooms we do not replicate are not tracked; a refused one is only logged.
    if (failed) request.effects.push(logEffect("warn", "dmuc.relay_failed", { id, condition }));
    return true;
  }
  return undefined;
}

/** <replicate/>: a room of another domain asks us to serve our users; we accept only our own domain. */
function onReplicate(request: ServiceRequest, payload: Element, options: ReplicaOptions): true {
  const { stanza, from, settings, context } = request;
  const replicate = parseReplicate(payload);
  const roomJid = from.local !== null ? bareString(from) : null;
  if (!replicate) return refuse(request, stanza, "malformed replicate", { roomJid, spec: { type: "modify", condition: "bad-request" } });
  if (replicate.domain !== settings.localDomain) return refuse(request, stanza, "replicate for a domain not ours", { roomJid });
  if (!roomJid || from.resource !== null || from.domain === settings.domain || from.domain === settings.localDomain) {
    return refuse(request, stanza, "replicate from something that is not a remote room", { roomJid });
  }
  const keepaliveSeconds = Math.max(MIN_KEEPALIVE_SECONDS, replicate.keepaliveSeconds);
  const historyLimit = Math.min(options.maxHistoryMessages, replicate.historyLimit);
  const now = context.now.getTime();
  // A new link replaces the old copy entirely: the primary re-sends the state and re-ENTERs the users.
  const room: ReplicatedRoom = {
    roomJid,
    primaryJid: roomJid,
    keepaliveSeconds,
    historyLimit,
    whois: "moderators",
    presenceBroadcast: ["moderator", "participant", "visitor"],
    roster: new Map(),
    local: new Map(),
    history: [],
    subject: null,
    lastHeard: now,
    lastSent: now,
    splitChat: true,
    splitSince: null,
    pingSent: null,
    splitQueue: [],
    splitPresences: new Map(),
    splitGone: new Set(),
    echoes: new Set(),
  };
  const replaced = request.state.dmuc.replicated.has(roomJid);
  putRoom(request, room);
  saveReplica(request, room);
  request.effects.push(send(iqResult(stanza, buildReplicate({ domain: replicate.domain, keepaliveSeconds, historyLimit }))));
  request.effects.push(logEffect("info", "dmuc.replica_linked", { room: roomJid, keepaliveSeconds, historyLimit, replaced }));
  request.effects.push(audit({ kind: "dmuc.replica_linked", roomJid, actorJid: roomJid, details: { domain: replicate.domain, keepaliveSeconds, historyLimit } }));
  return true;
}

/** <state/>: settings, roster presences, history and subject from the primary, merged into our copy. */
function onState(work: Work & { stanza: Element }, room: ReplicatedRoom, payload: Element): void {
  const state = parseState(payload);
  if (!state) {
    refuse(work, work.stanza, "malformed state", { roomJid: room.roomJid, spec: { type: "modify", condition: "bad-request" } });
    return;
  }
  let next: ReplicatedRoom = room;
  if (state.config) next = { ...next, whois: state.config.whois, presenceBroadcast: state.config.presenceBroadcast, splitChat: state.config.splitChat !== false };
  const roster = new Map(next.roster);
  for (const presence of state.presences) {
    const jid = presence.attrs.from?.startsWith(`${room.roomJid}/`) ? presence.attrs.from.slice(room.roomJid.length + 1) : null;
    if (!jid) continue;
    if (presence.attrs.type === "unavailable") roster.delete(jid);
    else roster.set(jid, cleaned(presence));
  }
  next = { ...next, roster };
  if (state.subject) next = { ...next, subject: state.subject };
  saveReplica(work, next);
  const entries = state.history.map((m) => historyEntry(work, room, m, delayOf(m) ?? work.context.now));
  next = appendHistory(work, next, entries);
  putRoom(work, next);
  work.effects.push(send(iqResult(work.stanza)));
  work.effects.push(logEffect("debug", "dmuc.state_applied", { room: room.roomJid, presences: state.presences.length, history: entries.length, last: state.last }));
}

function delayOf(message: Element): Date | null {
  const stamp = message.getChild("delay", NS.DELAY)?.attrs.stamp;
  const at = stamp ? new Date(stamp) : null;
  return at && !Number.isNaN(at.getTime()) ? at : null;
}

/**
 * A stanza addressed to a remote room (bare or room/nick) that reached our component: the server
 * module diverted it. Our domain's users' stanzas are relayed unchanged to the primary through the
 * module; anything else with a replicated room's address is refused.
 */
function onDiverted(request: ServiceRequest, to: Jid, options: ReplicaOptions): true | undefined {
  const { settings, stanza, from } = request;
  if (to.local === null || to.domain === settings.localDomain) return undefined;
  const roomJid = `${to.local}@${to.domain}`;
  const replicated = request.state.dmuc.replicated.has(roomJid);
  if (!isLocalUser(settings, from)) {
    return replicated ? refuse(request, stanza, "relay for a user of another domain", { roomJid, from: settings.domain }) : undefined;
  }
  const room = getRoom(request, roomJid);
  if (room && isSplit(room)) {
    // Split: nothing goes to the primary; the replica serves its users itself until the netjoin.
    onSplitDiverted(request, room, stanza, to, options);
    return true;
  }
  // Rooms we do not (or no longer) replicate are relayed too: a late diverted stanza still arrives,
  // and the module only sends on stanzas of its own users with a live session.
  relayToPrimary(request, cloneElement(stanza), roomJid);
  request.effects.push(logEffect("debug", "dmuc.relayed", { room: roomJid, name: stanza.name, replicated }));
  return true;
}

/** The "service/tick" handler: ENTERs the module never answered, stale module IQs, keepalive and split pings. */
export function tickReplica(work: Work, options: ReplicaOptions): void {
  if (!work.settings.localDomain) return;
  const now = work.context.now.getTime();
  expireDirected(work, options, DIRECTED_TIMEOUT_MS);
  for (const [id, query] of work.state.dmuc.pending) {
    if ((query.kind === "replica-iq" || query.kind === "relay") && now - query.sent >= MODULE_IQ_TIMEOUT_MS) {
      setPending(work, id, null);
      work.effects.push(logEffect(query.kind === "relay" ? "debug" : "warn", "dmuc.module_timeout", { room: query.roomJid, kind: query.kind }));
    }
  }
  for (const room of work.state.dmuc.replicated.values()) {
    if (room.restored) {
      // Back from the database: the server module forgot our diversions when we went away.
      putRoom(work, { ...room, restored: undefined });
      if (room.local.size > 0) sendDivert(work, room.roomJid, true);
    }
    if (isSplit(room)) {
      // Split: the room is pinged every 5 s; its netjoin (not the pong) ends the split.
      if (now - room.lastSent >= (options.splitPingMs ?? SPLIT_PING_MS)) pingRoom(work, room);
      continue;
    }
    if (room.pingSent !== null && now - room.pingSent >= (options.linkTimeoutMs ?? SPLIT_TIMEOUT_MS)) {
      markSplit(work, room, "ping unanswered", null, options.splitAway !== false);
      pingRoom(work, getRoom(work, room.roomJid)!);
      continue;
    }
    if (now - room.lastSent < room.keepaliveSeconds * 1000) continue;
    pingRoom(work, room);
    const pinged = getRoom(work, room.roomJid)!;
    if (pinged.pingSent === null) putRoom(work, { ...pinged, pingSent: now });
  }
}

/**
 * disco#info of the service: a replica says so (docs/PROTOCOL.md "Parties and addresses"). Its identity
 * is given only on the DMUC2 node, where only peers look: a second conference identity on the service
 * itself confuses room discovery in clients.
 */
export function replicaDiscoInfo(settings: ServiceSettings, info: DiscoInfo, node?: string): boolean {
  if (!settings.localDomain) return false;
  if (node === DMUC) info.identities.push({ ...REPLICA_IDENTITY });
  info.features.add(DMUC);
  return true;
}
