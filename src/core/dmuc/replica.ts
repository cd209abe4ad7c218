// The DMUC2 replica role (docs/PROTOCOL.md, XEP-0282): this gateway serves the users of its
// DMUC_LOCAL_DOMAIN in remote rooms. It takes, before normal routing, (1) control IQs and broadcasts
// from the rooms that registered with it, (2) the server module's answers to its queries and (3) the
// local users' stanzas that the module diverts to it, which it relays to the primary. While a room's
// link is split it serves those users itself until the primary's netjoin (replica-split.ts).
import xml, { type Element } from "@xmpp/xml";
import { cloneElement } from "../../xmpp/element.js";
import { logEffect, send } from "../effects.js";
import type { DiscoInfo, ServiceRequest, ServiceSettings } from "../service.js";
import { iqPayload, iqResult, NS } from "../../xmpp/stanza.js";
import { bareString, type Jid } from "../../xmpp/jid.js";
import type { ReplicatedRoom } from "./state.js";
import { buildResync, buildTaken, DMUC, REPLICA_IDENTITY, parseDirectedAnswer, parseDiverted, parseState } from "./wire.js";
import { appendHistory, historyEntry, cleaned } from "./replica-fanout.js";
import { expireDirected, finishEnter, onEnter, onLeave } from "./replica-enter.js";
import { DIRECTED_TIMEOUT_MS, sendDivert, getRoom, isLocalUser, linkTimers, MODULE_IQ_TIMEOUT_MS, putRoom, refuse, saveReplica, setPending, touch, type ReplicaOptions, type Work } from "./replica-util.js";
import { errorCondition, isSplit, onNetjoin, onSplitDiverted, relayToPrimary, SPLIT_CONDITIONS } from "./replica-split.js";
import { fromRoom, heardFromRoom, roomBounced, submit, tickLink } from "./replica-link.js";
import { expireReplicateChecks, finishReplicate, onReplicate } from "./replica-replicate.js";
import { onCatchUpAnswer, startCatchUp, tickCatchUp } from "./replica-catchup.js";
import { finishUnreplicate, forgetIfEmpty } from "./replica-forget.js";

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
  if (stanza.attrs.type === "error") onRoomError(request, current.roomJid, stanza, options);
  else fromRoom(request, current, stanza, options);
  return true;
}

/**
 * An error from the room's JID: a bounce saying its server cannot be reached splits the link at once
 * (XEP-0282 §Netsplit); any other error (the room refused something) is only logged.
 */
function onRoomError(work: Work & { stanza: Element }, roomJid: string, stanza: Element, options: ReplicaOptions): void {
  const condition = errorCondition(stanza);
  work.effects.push(logEffect("info", "dmuc.room_error", { room: roomJid, name: stanza.name, condition }));
  if (condition && SPLIT_CONDITIONS.has(condition)) roomBounced(work, roomJid, options, condition);
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
    heardFromRoom(request, room.roomJid, options);
    return true;
  }
  if (!payload || payload.attrs.xmlns !== DMUC) return undefined;
  if (type === "set" && payload.name === "replicate") return onReplicate(request, payload);
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
  else if (type === "set" && payload.name === "netjoin") {
    const joined = onNetjoin(request, current, stanza, payload);
    heardFromRoom(request, room.roomJid, options);
    for (const message of joined?.messages ?? []) {
      const after = getRoom(request, room.roomJid);
      if (after) submit(request, after, message.stanza, options, message.at);
    }
    for (const presence of joined?.presences ?? []) {
      const after = getRoom(request, room.roomJid);
      if (after) submit(request, after, presence, options);
    }
    if (joined) startCatchUp(request, room.roomJid, joined.since, joined.catchUp, joined.after);
  } else return refuse(request, stanza, "unknown dmuc request", { roomJid: room.roomJid, spec: { type: "cancel", condition: "feature-not-implemented" } });
  heardFromRoom(request, room.roomJid, options);
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
  if (query?.kind === "replicate-check" && fromModule) {
    const noModule = failed && (condition === "service-unavailable" || condition === "feature-not-implemented");
    finishReplicate(request, id, query, noModule ? "no-module" : failed ? null : parseDirectedAnswer(stanza.getChild("directed", DMUC)), options);
    return true;
  }
  if (query?.kind === "replica-iq" && fromModule) {
    setPending(request, id, null);
    if (failed) request.effects.push(logEffect("warn", "dmuc.module_error", { room: query.roomJid, condition }));
    return true;
  }
  if (query?.kind === "catchup" && from.local !== null && getRoom(request, bareString(from))?.primaryJid === bareString(from) && query.roomJid === bareString(from)) {
    touch(request, query.roomJid, { heard: true });
    onCatchUpAnswer(request, id, query, stanza);
    heardFromRoom(request, query.roomJid, options);
    return true;
  }
  if (query?.kind === "unreplicate" && from.local !== null && bareString(from) === query.roomJid) {
    finishUnreplicate(request, id, query, stanza);
    return true;
  }
  if (query) return undefined; // another role's query
  const room = from.local !== null ? getRoom(request, bareString(from)) : undefined;
  if (room && (from.resource === null || failed)) {
    touch(request, room.roomJid, { heard: true });
    // Our resync requests are the only IQs we send the room: an error saying its server is unreachable
    // is a split; an answer is the room being there.
    if (failed && condition && SPLIT_CONDITIONS.has(condition)) roomBounced(request, room.roomJid, options, condition);
    else if (failed) request.effects.push(logEffect("warn", "dmuc.link_error", { room: room.roomJid, condition }));
    else heardFromRoom(request, room.roomJid, options);
    return true;
  }
  if (fromModule) {
    // Relays to rooms we do not replicate are not tracked; a refused one is only logged.
    if (failed) request.effects.push(logEffect("warn", "dmuc.relay_failed", { id, condition }));
    return true;
  }
  return undefined;
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
  const { settings, stanza } = request;
  if (to.local === null || to.domain === settings.localDomain) return undefined;
  // The module numbers what it hands us and keeps it until we say we took it: once handled here (the
  // submission, local delivery or relay is in the same batch of effects), we say so.
  const receipt = parseDiverted(stanza);
  if (receipt) stanza.children = stanza.children.filter((c) => typeof c === "string" || !c.is("diverted", DMUC));
  const handled = handleDiverted(request, to, options);
  if (receipt && isLocalUser(settings, request.from)) {
    request.effects.push(send(xml("message", { from: settings.domain, to: settings.localDomain, id: request.context.newId() }, buildTaken(receipt))));
  }
  return handled;
}

function handleDiverted(request: ServiceRequest, to: Jid, options: ReplicaOptions): true | undefined {
  const { settings, stanza, from } = request;
  const roomJid = `${to.local!}@${to.domain}`;
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
  if (room) {
    // Submitted in our own name: a bounce or a missing acknowledgement comes back to us, not to the user.
    submit(request, room, stanza, options);
    return true;
  }
  // Rooms we do not (or no longer) replicate are relayed through the module in the user's name: a late
  // diverted stanza still arrives, and the module only sends on stanzas of its own users with a live session.
  relayToPrimary(request, cloneElement(stanza));
  request.effects.push(logEffect("debug", "dmuc.relayed", { room: roomJid, name: stanza.name, replicated }));
  return true;
}

/** The "service/tick" handler: ENTERs the module never answered, stale module IQs, the links' timers. */
export function tickReplica(work: Work, options: ReplicaOptions): void {
  if (!work.settings.localDomain) return;
  const now = work.context.now.getTime();
  expireDirected(work, options, DIRECTED_TIMEOUT_MS);
  expireReplicateChecks(work, options);
  for (const [id, query] of work.state.dmuc.pending) {
    if (query.kind === "replica-iq" && now - query.sent >= MODULE_IQ_TIMEOUT_MS) {
      setPending(work, id, null);
      work.effects.push(logEffect("warn", "dmuc.module_timeout", { room: query.roomJid, kind: query.kind }));
    }
  }
  for (const room of work.state.dmuc.replicated.values()) {
    if (room.restored) {
      // Back from the database: the server module forgot our diversions when we went away.
      putRoom(work, { ...room, restored: undefined });
      if (room.local.size > 0) sendDivert(work, room.roomJid, true);
    }
    // Acknowledgements, resends, keepalive and split probes, detection (replica-link.ts).
    tickLink(work, room.roomJid, options);
    tickCatchUp(work, room.roomJid, options);
    // A room none of our users is in any more is left after a grace (replica-forget.ts).
    const still = getRoom(work, room.roomJid);
    if (still) forgetIfEmpty(work, still);
    const current = getRoom(work, room.roomJid);
    // The link is up again but the netjoin that ends local service has not come: ask again.
    if (current && isSplit(current) && current.link.end.kind === "active" && now - current.lastSent >= linkTimers(current, options).probeMs) {
      work.effects.push(send(xml("iq", { type: "set", id: work.context.newId(), from: work.settings.domain, to: current.primaryJid }, buildResync())));
      touch(work, current.roomJid, { sent: true });
    }
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
