// The primary's end of the reliable link (docs/PROTOCOL.md "The reliable link", "What users send"):
// headers and submissions from the replica, the link's timers (acknowledgements, resends, keepalive
// probes, detection), and what the link's state machine decides: a split (the netsplit of
// primary-netsplit.ts), a heal (netjoin), giving up on a replica that never came back.
import xml, { type Element } from "@xmpp/xml";
import { audit, logEffect, send } from "../effects.js";
import type { PluginApi } from "../service.js";
import { parseJid } from "../../xmpp/jid.js";
import { cloneElement } from "../../xmpp/element.js";
import { DEFAULT_LINK_TIMERS, type LinkEvent, type LinkTimers } from "./link/channel.js";
import { heard, headerMessage, step, transmitHeader } from "./link/stream.js";
import type { ReplicaLink } from "./state.js";
import { withLink, withoutLink, withResent } from "./dmuc-state.js";
import { DMUC, parseLinkHeader, parseSubmit } from "./wire.js";
import { markSplit, startNetjoin } from "./primary-netsplit.js";
import type { LinkIo, PrimaryOptions } from "./primary-links.js";

/** The furthest back a submission's own time is taken (a replica's clock, or a very long split). */
const MAX_LATE_MS = 24 * 3_600_000;

export function primaryLinkTimers(link: ReplicaLink, options: PrimaryOptions): LinkTimers {
  return { ...DEFAULT_LINK_TIMERS, keepaliveMs: link.keepaliveSeconds * 1000, splitAfterMs: options.linkTimeoutMs, probeMs: options.splitPingSeconds * 1000 };
}

/** A message from the replica carrying a link header: its acknowledgement, probe, or submission. */
export function fromReplica(io: LinkIo, api: PluginApi, roomJid: string, link: ReplicaLink, stanza: Element, options: PrimaryOptions): void {
  const header = parseLinkHeader(stanza);
  if (!header) {
    io.effects.push(logEffect("warn", "dmuc.bad_link_header", { room: roomJid, replica: link.replicaJid }));
    return;
  }
  const numbered = header.seq !== undefined;
  const result = heard<Element, Element>(link.stream, header, numbered ? stanza : null);
  io.state = { ...io.state, dmuc: withLink(io.state.dmuc, roomJid, { ...link, stream: result.stream, lastHeard: io.context.now.getTime() }) };
  advance(io, api, roomJid, link.replicaJid, result.event, options);
}

/** Anything else from the replica (answers to our IQs, its pings): it is there, which heals a split stream. */
export function heardFromReplica(io: LinkIo, api: PluginApi, roomJid: string, replicaJid: string, options: PrimaryOptions): void {
  advance(io, api, roomJid, replicaJid, { type: "heard", ack: 0, carried: null, probe: false }, options);
}

/** The links' timers, on every tick. */
export function tickLinks(io: LinkIo, api: PluginApi, options: PrimaryOptions): void {
  for (const [roomJid, links] of io.state.dmuc.links) {
    for (const link of links.values()) if (link.state !== "negotiating") advance(io, api, roomJid, link.replicaJid, { type: "tick" }, options);
  }
}

function advance(io: LinkIo, api: PluginApi, roomJid: string, replicaJid: string, event: LinkEvent<Element, Element>, options: PrimaryOptions): void {
  const link = io.state.dmuc.links.get(roomJid)?.get(replicaJid);
  if (!link) return;
  const now = io.context.now.getTime();
  const { stream, actions } = step(link.stream, event, now, primaryLinkTimers(link, options));
  io.state = { ...io.state, dmuc: withLink(io.state.dmuc, roomJid, { ...link, stream }) };
  const current = () => io.state.dmuc.links.get(roomJid)?.get(replicaJid);
  for (const action of actions) {
    switch (action.type) {
      case "transmit": {
        const copy = cloneElement(action.item);
        copy.append(transmitHeader(stream, action.seq, action.ack));
        io.effects.push(send(copy));
        // Sent again (first sends go through sendOnLink): its bounce no longer says the replica never had it.
        const resent = current();
        if (resent && copy.attrs.id) io.state = { ...io.state, dmuc: withLink(io.state.dmuc, roomJid, withResent(resent, copy.attrs.id)) };
        break;
      }
      case "ack":
        io.effects.push(send(headerMessage(stream, roomJid, replicaJid, io.context.newId(), action.ack, action.probe)));
        break;
      case "deliver":
        takeSubmission(io, api, roomJid, replicaJid, action.item);
        break;
      case "split": {
        const split = current();
        if (split) markSplit(io, roomJid, split, `link ${action.reason}`, options.markAway);
        break;
      }
      case "healed": {
        const healed = current();
        io.effects.push(logEffect("info", "dmuc.link_up", { room: roomJid, replica: replicaJid }));
        if (healed?.state === "split") startNetjoin(io, roomJid, healed);
        break;
      }
      case "abandoned": {
        // The replica never came back: its users are served directly again, as plain XEP-0045 occupants.
        io.state = { ...io.state, dmuc: withoutLink(io.state.dmuc, roomJid, replicaJid) };
        io.effects.push(logEffect("warn", "dmuc.replica_gone", { room: roomJid, replica: replicaJid }));
        io.effects.push(audit({ kind: "link.abandoned", roomJid, actorJid: replicaJid, details: { domain: link.domain } }));
        return;
      }
      case "request":
        break;
    }
  }
  const after = current();
  if (after && actions.some((a) => a.type === "transmit" || a.type === "ack")) io.state = { ...io.state, dmuc: withLink(io.state.dmuc, roomJid, { ...after, lastSent: now }) };
}

/**
 * A replica's user's stanza, submitted in the replica's name: taken as if the user had sent it to the
 * room. Only users of the link's domain, only to this room (s2s authenticated the replica's domain,
 * and the replica vouches for its users). A groupchat message held through a split keeps its time.
 */
function takeSubmission(io: LinkIo, api: PluginApi, roomJid: string, replicaJid: string, outer: Element): void {
  const link = io.state.dmuc.links.get(roomJid)?.get(replicaJid);
  const submitted = parseSubmit(outer);
  const from = parseJid(submitted?.stanza.attrs.from);
  const to = parseJid(submitted?.stanza.attrs.to);
  if (!link || !submitted || !from || from.local === null || from.resource === null || from.domain !== link.domain || !to || to.local === null || `${to.local}@${to.domain}` !== roomJid) {
    const details = { replica: replicaJid, from: submitted?.stanza.attrs.from ?? null, to: submitted?.stanza.attrs.to ?? null };
    io.effects.push(logEffect("warn", "dmuc.submission_refused", { room: roomJid, ...details }));
    io.effects.push(audit({ kind: "dmuc.refused", roomJid, actorJid: replicaJid, details: { step: "submit", ...details } }));
    return;
  }
  const now = io.context.now.getTime();
  const at = submitted.at.getTime();
  const chat = submitted.stanza.name === "message" && submitted.stanza.attrs.type === "groupchat";
  const late = chat && now - at > DEFAULT_LINK_TIMERS.resendAfterMs;
  const context = late ? { now: new Date(Math.min(now, Math.max(at, now - MAX_LATE_MS))), newId: io.context.newId, catchUp: true, handledAt: io.context.now } : io.context;
  const outcome = api.inject(io.state, submitted.stanza, { ...context, submittedBy: replicaJid });
  io.state = outcome.state;
  io.effects.push(...outcome.effects);
}

/** Whether a stanza from a replica JID is link traffic (a header, maybe with a submission). */
export function isLinkMessage(stanza: Element): boolean {
  return stanza.name === "message" && stanza.attrs.type !== "error" && !!stanza.getChild("link", DMUC);
}

/** An answer to a submission whose room has no link with this replica: it should stop submitting. */
export function noLink(stanza: Element, roomJid: string): Element {
  return xml(
    "message",
    { type: "error", from: roomJid, to: stanza.attrs.from, id: stanza.attrs.id },
    xml("error", { type: "cancel" }, xml("item-not-found", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" })),
  );
}
