// The replica's end of the reliable link (docs/PROTOCOL.md "The reliable link", "What users send"):
// local users' stanzas to a linked room are submitted in the replica's own name, numbered, and kept
// until the primary acknowledges them, so that a bounce, or no acknowledgement within the link timeout,
// comes back to the replica (never to the user) and splits the link; the room's numbered broadcasts are
// applied once and in order. While the link is split or suspect, what local users said and the primary
// has not acknowledged is delivered to the other local users at once (local continuation); the
// primary's broadcast of it later is stored but not delivered again.
import xml, { type Element } from "@xmpp/xml";
import { audit, logEffect, send, store } from "../effects.js";
import { cloneElement } from "../../xmpp/element.js";
import { NS } from "../../xmpp/stanza.js";
import { parseJid } from "../../xmpp/jid.js";
import type { LinkEvent } from "./link/channel.js";
import { heard, headerMessage, step, transmitHeader } from "./link/stream.js";
import type { ReplicatedRoom, Submission } from "./state.js";
import { buildResync, buildSubmit, DMUC, parseLinkHeader } from "./wire.js";
import { ignoreFromRoom, onMessageBroadcast, onPresenceBroadcast } from "./replica-fanout.js";
import { getRoom, linkTimers, putRoom, sendDivert, touch, type ReplicaOptions, type Work } from "./replica-util.js";
import { isSplit, localGroupchat, markSplit } from "./replica-split.js";
import { noteLive } from "./replica-catchup.js";

/** At most this many origin-ids of messages delivered early are kept waiting for their broadcast. */
const MAX_EARLY = 500;

/** A groupchat message with a body to the room itself: what local continuation delivers. */
function isRoomChat(stanza: Element, roomJid: string): boolean {
  return stanza.name === "message" && stanza.attrs.type === "groupchat" && !!stanza.getChild("body") && parseJid(stanza.attrs.to)?.resource === null && stanza.attrs.to?.toLowerCase() === roomJid;
}

/**
 * Submits a local user's stanza to the primary (sent now, or at `at`: a message kept through a split).
 * Groupchat gets an origin-id, by which it is recognised when it comes back.
 */
export function submit(work: Work, room: ReplicatedRoom, stanza: Element, options: ReplicaOptions, at: Date = work.context.now): void {
  let item = cloneElement(stanza);
  if (isRoomChat(item, room.roomJid) && !item.getChild("origin-id", NS.STANZA_ID)) item.append(xml("origin-id", { xmlns: NS.STANZA_ID, id: work.context.newId() }));
  const submission: Submission = { stanza: item, at: at.getTime() };
  advance(work, room.roomJid, { type: "send", item: submission }, options);
}

/**
 * A message or presence from the room. Its header (acknowledgement, probe) goes to the link; a
 * numbered broadcast is applied when the link says it is the next one; one without a number (a
 * primary that does not number) is applied as it comes. A header alone is only that.
 */
export function fromRoom(work: Work, room: ReplicatedRoom, stanza: Element, options: ReplicaOptions): void {
  const hasHeader = !!stanza.getChild("link", DMUC);
  const header = parseLinkHeader(stanza);
  if (hasHeader && !header) {
    work.effects.push(logEffect("warn", "dmuc.bad_link_header", { room: room.roomJid, name: stanza.name }));
    return;
  }
  const numbered = header?.seq !== undefined;
  const result = heard<Submission, Element>(room.link, header, numbered ? stanza : null);
  putRoom(work, { ...room, link: result.stream });
  advance(work, room.roomJid, result.event, options);
  const headerOnly = hasHeader && stanza.getChildElements().every((c) => c.is("link", DMUC));
  if (!numbered && !headerOnly) applyFromRoom(work, room.roomJid, stanza);
}

/** Anything else from the room (its IQs, answers to ours): it is there, which heals a split link. */
export function heardFromRoom(work: Work, roomJid: string, options: ReplicaOptions): void {
  advance(work, roomJid, { type: "heard", ack: 0, carried: null, probe: false }, options);
}

/** The room's server bounced something we sent (with that error condition): the link is split at once. */
export function roomBounced(work: Work, roomJid: string, options: ReplicaOptions, condition: string | null = null): void {
  advance(work, roomJid, { type: "bounced" }, options, condition);
}

export function tickLink(work: Work, roomJid: string, options: ReplicaOptions): void {
  advance(work, roomJid, { type: "tick" }, options);
}

function applyFromRoom(work: Work, roomJid: string, stanza: Element): void {
  noteLive(work, roomJid, stanza);
  const room = getRoom(work, roomJid);
  if (!room) return;
  const resource = parseJid(stanza.attrs.from)?.resource ?? null;
  if (stanza.name === "presence" && resource !== null) onPresenceBroadcast(work, room, stanza, resource);
  else if (stanza.name === "message" && stanza.attrs.type === "groupchat") onMessageBroadcast(work, room, stanza);
  else ignoreFromRoom(work, room, stanza);
}

function advance(work: Work, roomJid: string, event: LinkEvent<Submission, Element>, options: ReplicaOptions, condition: string | null = null): void {
  const room = getRoom(work, roomJid);
  if (!room) return;
  const { stream, actions } = step(room.link, event, work.context.now.getTime(), linkTimers(room, options));
  putRoom(work, { ...room, link: stream });
  const from = work.settings.domain;
  for (const action of actions) {
    switch (action.type) {
      case "transmit": {
        const submitted = xml("message", { from, to: room.primaryJid, id: work.context.newId() }, transmitHeader(stream, action.seq, action.ack), buildSubmit({ stanza: action.item.stanza, at: new Date(action.item.at) }));
        work.effects.push(send(submitted));
        touch(work, roomJid, { sent: true });
        break;
      }
      case "ack":
        work.effects.push(send(headerMessage(stream, from, room.primaryJid, work.context.newId(), action.ack, action.probe)));
        touch(work, roomJid, { sent: true });
        break;
      case "deliver":
        applyFromRoom(work, roomJid, action.item);
        break;
      case "split": {
        const current = getRoom(work, roomJid);
        if (current) markSplit(work, current, `link ${action.reason}`, condition, options.splitAway !== false);
        break;
      }
      case "healed": {
        work.effects.push(logEffect("info", "dmuc.link_up", { room: roomJid }));
        // Served locally since the split: the primary's netjoin ends that (it may not know of the split).
        const current = getRoom(work, roomJid);
        if (current && isSplit(current)) work.effects.push(send(xml("iq", { type: "set", id: work.context.newId(), from, to: current.primaryJid }, buildResync())));
        break;
      }
      case "abandoned":
        forget(work, roomJid);
        return;
      case "request":
        break;
    }
  }
  continueLocally(work, roomJid);
}

/**
 * Local continuation: while the link is split or suspect, what local users said and the primary has
 * not acknowledged reaches the other local users now; its broadcast later is recognised by origin-id.
 */
function continueLocally(work: Work, roomJid: string): void {
  const room = getRoom(work, roomJid);
  if (!room || (room.link.end.kind !== "split" && room.link.end.kind !== "suspect")) return;
  let echoes: Set<string> | null = null;
  // A message whose broadcast came back already (the netjoin's catch-up may bring it before the
  // acknowledgement of its submission) was delivered then, or early before it.
  let broadcast: Set<string> | null = null;
  for (const { item } of room.link.end.channel.outbox.unacked) {
    const stanza = item.stanza;
    const originId = stanza.getChild("origin-id", NS.STANZA_ID)?.attrs.id;
    const nick = room.local.get(stanza.attrs.from ?? "");
    if (!originId || nick === undefined || !isRoomChat(stanza, roomJid) || (echoes ?? room.echoes).has(originId)) continue;
    broadcast ??= new Set(room.history.flatMap((e) => e.stanza.getChild("origin-id", NS.STANZA_ID)?.attrs.id ?? []));
    if (broadcast.has(originId)) continue;
    echoes ??= new Set(room.echoes);
    echoes.add(originId);
    const local = localGroupchat(room, stanza, nick);
    for (const [session] of room.local) {
      const copy = cloneElement(local);
      copy.attrs.to = session;
      work.effects.push(send(copy));
    }
    work.effects.push(logEffect("debug", "dmuc.delivered_early", { room: roomJid, nick, originId }));
  }
  if (!echoes) return;
  // Never fewer than the messages still waiting: one forgotten while it waits would be delivered early again.
  const keep = Math.max(MAX_EARLY, room.link.end.channel.outbox.unacked.length);
  putRoom(work, { ...room, echoes: new Set([...echoes].slice(Math.max(0, echoes.size - keep))) });
}

/**
 * The primary never came back (the link gave up after its probes): local users are told the room is
 * gone for them (332, as when a service shuts down), and the copy is forgotten.
 */
function forget(work: Work, roomJid: string): void {
  const room = getRoom(work, roomJid);
  if (!room) return;
  for (const [session, nick] of room.local) {
    const gone = xml(
      "presence",
      { type: "unavailable", from: `${roomJid}/${nick}`, to: session },
      xml("x", { xmlns: NS.MUC_USER }, xml("item", { affiliation: "none", role: "none" }), xml("status", { code: "110" }), xml("status", { code: "332" })),
    );
    work.effects.push(send(gone));
  }
  if (room.local.size > 0) sendDivert(work, roomJid, false);
  const replicated = new Map(work.state.dmuc.replicated);
  replicated.delete(roomJid);
  work.state = { ...work.state, dmuc: { ...work.state.dmuc, replicated } };
  work.effects.push(store({ op: "room.delete", roomJid }));
  work.effects.push(logEffect("warn", "dmuc.primary_gone", { room: roomJid, sessions: room.local.size }));
  work.effects.push(audit({ kind: "link.abandoned", roomJid, actorJid: room.primaryJid, details: { sessions: room.local.size } }));
}
