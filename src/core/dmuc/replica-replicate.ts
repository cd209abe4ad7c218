// <replicate/> on the replica (docs/PROTOCOL.md "Creating a replica link"; issue 16 point 4): a remote
// room may make us serve our users only when one of them has actually entered it, which the server
// module tells from its sessions' directed presence; a remote domain may have only so many rooms here.
import type { Element } from "@xmpp/xml";
import { audit, logEffect, send } from "../effects.js";
import type { ServiceRequest } from "../service.js";
import { iqResult } from "../../xmpp/stanza.js";
import { bareString, parseJid } from "../../xmpp/jid.js";
import type { PendingQuery, ReplicatedRoom } from "./state.js";
import { buildDirectedQuery, buildReplicate, parseReplicate } from "./wire.js";
import { newStream } from "./link/stream.js";
import { DIRECTED_TIMEOUT_MS, MIN_KEEPALIVE_SECONDS, moduleIq, putRoom, refuse, saveReplica, setPending, type ReplicaOptions, type Work } from "./replica-util.js";

/** The most rooms one remote domain may have replicated here (a stranger cannot fill the replica). */
export const MAX_ROOMS_PER_DOMAIN = 100;

type ReplicateCheck = Extract<PendingQuery, { kind: "replicate-check" }>;

/** <replicate/>: checked, then the server module is asked whether any of our users is in that room. */
export function onReplicate(request: ServiceRequest, payload: Element): true {
  const { stanza, from, settings } = request;
  const replicate = parseReplicate(payload);
  const roomJid = from.local !== null ? bareString(from) : null;
  if (!replicate) return refuse(request, stanza, "malformed replicate", { roomJid, spec: { type: "modify", condition: "bad-request" } });
  if (replicate.domain !== settings.localDomain) return refuse(request, stanza, "replicate for a domain not ours", { roomJid });
  if (!roomJid || from.resource !== null || from.domain === settings.domain || from.domain === settings.localDomain) {
    return refuse(request, stanza, "replicate from something that is not a remote room", { roomJid });
  }
  const others = [...request.state.dmuc.replicated.values()].filter((r) => r.roomJid !== roomJid && parseJid(r.primaryJid)?.domain === from.domain).length;
  if (others >= MAX_ROOMS_PER_DOMAIN) {
    return refuse(request, stanza, "too many rooms from that domain", { roomJid, spec: { type: "wait", condition: "resource-constraint" } });
  }
  const id = request.context.newId();
  setPending(request, id, { kind: "replicate-check", roomJid, request: stanza, sent: request.context.now.getTime() });
  request.effects.push(send(moduleIq(request, "get", buildDirectedQuery(null, roomJid), id)));
  return true;
}

/**
 * The module's answer: true (a local session sent the room available presence), false, null (an
 * error or no answer), or "no-module" (the server does not know the question: accepted only when the
 * operator trusts primaries, DMUC_TRUST_PRIMARY_ENTER).
 */
export function finishReplicate(work: Work, id: string, query: ReplicateCheck, answer: boolean | null | "no-module", options: ReplicaOptions): void {
  setPending(work, id, null);
  const stanza = query.request;
  const present = answer === "no-module" ? (options.trustPrimaryEnter ? true : null) : answer;
  if (present !== true) {
    refuse(work, stanza, present === false ? "none of our users is in that room" : "our users' presence in that room not verified", { roomJid: query.roomJid });
    return;
  }
  const replicate = parseReplicate(stanza.getChild("replicate"))!;
  const roomJid = query.roomJid;
  const keepaliveSeconds = Math.max(MIN_KEEPALIVE_SECONDS, replicate.keepaliveSeconds);
  const historyLimit = Math.min(options.maxHistoryMessages, replicate.historyLimit);
  const now = work.context.now.getTime();
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
    link: newStream(work.context.newId(), now),
    splitChat: true,
    splitSince: null,
    splitQueue: [],
    splitPresences: new Map(),
    splitGone: new Set(),
    echoes: new Set(),
  };
  const replaced = work.state.dmuc.replicated.has(roomJid);
  putRoom(work, room);
  saveReplica(work, room);
  work.effects.push(send(iqResult(stanza, buildReplicate({ domain: replicate.domain, keepaliveSeconds, historyLimit }))));
  work.effects.push(logEffect("info", "dmuc.replica_linked", { room: roomJid, keepaliveSeconds, historyLimit, replaced }));
  work.effects.push(audit({ kind: "dmuc.replica_linked", roomJid, actorJid: roomJid, details: { domain: replicate.domain, keepaliveSeconds, historyLimit } }));
}

/** Checks the module never answered: refused. */
export function expireReplicateChecks(work: Work, options: ReplicaOptions): void {
  const now = work.context.now.getTime();
  for (const [id, query] of work.state.dmuc.pending) {
    if (query.kind === "replicate-check" && now - query.sent >= DIRECTED_TIMEOUT_MS) finishReplicate(work, id, query, null, options);
  }
}
