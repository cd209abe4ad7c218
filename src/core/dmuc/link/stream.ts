// One end of a live DMUC2 link as the gateway keeps it (docs/PROTOCOL.md "The reliable link"): the
// state machine of channel.ts, the id of our stream (a new one for each incarnation of the link, so
// that numbers are never compared across a restart or a re-based netjoin), and the id of the other
// side's stream we apply. Translates the machine's actions into <link/> headers and headers into events.
import xml, { type Element } from "@xmpp/xml";
import { buildLinkHeader, type LinkHeader } from "../wire.js";
import { emptyInbox, emptyOutbox, type Inbox, type Outbox } from "./sequence.js";
import { newChannel, restoredLink, stepEstablished, type LinkAction, type LinkEvent, type LinkTimers, type ReplicaLinkState } from "./channel.js";

export interface LinkStream<O> {
  readonly end: ReplicaLinkState<O>;
  /** Our stream's id. */
  readonly id: string;
  /** The other side's stream we apply (null: none seen yet). */
  readonly peer: string | null;
  /** The other side's streams we followed before: never taken up again (a late stanza of an old stream). */
  readonly retired: readonly string[];
  /**
   * This end was restored after a restart without the other side's position: the first numbered stanza
   * it sees starts the other side's stream, whatever its number. A new link's end takes only a 1: a
   * stream followed from a later number would acknowledge the stanzas before it, lost on the way.
   */
  readonly lostPlace?: boolean;
}

/** How many old streams of the other side are remembered. */
const RETIRED = 8;

export function newStream<O>(id: string, now: number): LinkStream<O> {
  return { end: { kind: "active", since: now, channel: newChannel<O>(now) }, id, peer: null, retired: [] };
}

/** What a link end commits (docs/PROTOCOL.md "Durability"): its stream, what it has not had acknowledged, where it is in the other's. */
export interface SavedStream<O> {
  readonly id: string;
  readonly outbox: Outbox<O>;
  readonly peer: string | null;
  readonly inbox: Inbox;
}

/**
 * The end of a link a restarted process had, as it committed it: split until the other side answers
 * its first probe, then everything unacknowledged is sent again with its old numbers (the other side
 * drops what it had applied), and the other side's stream is followed from where it was applied. A
 * committed place in the other side's stream is known, not lost: only without one (`peer` null) does
 * the first numbered stanza seen start the other side's stream whatever its number.
 */
export function restoredStream<O>(saved: SavedStream<O>, now: number): LinkStream<O> {
  const end = restoredLink({ outbox: saved.outbox, inbox: saved.inbox }, now);
  return { end, id: saved.id, peer: saved.peer, retired: [], ...(saved.peer === null && { lostPlace: true }) };
}

/** A restarted end with nothing committed: a new stream of its own, the other side's followed from its next stanza. */
export function freshRestoredStream<O>(id: string, now: number): LinkStream<O> {
  return restoredStream({ id, outbox: emptyOutbox<O>(), peer: null, inbox: emptyInbox() }, now);
}

/** A stream that follows the other side's stream `peer` from `applied` on (a restarted primary's place in a replica's stream). */
export function resumedStream<O>(stream: LinkStream<O>, peer: string | null, applied: number): LinkStream<O> {
  if (peer === null) return stream;
  const channel = { ...stream.end.channel, inbox: { applied } };
  return { ...stream, peer, lostPlace: undefined, end: { ...stream.end, channel } as ReplicaLinkState<O> };
}

/**
 * A fresh stream in the same state of the link (split or not), with nothing to resend: what was
 * unacknowledged is sent again another way (the primary's netjoin), and the other side's numbers go on.
 */
export function rebased<O>(stream: LinkStream<O>, id: string, now: number): LinkStream<O> {
  const channel = { ...newChannel<O>(now), inbox: stream.end.channel.inbox, lastHeard: stream.end.channel.lastHeard };
  return { ...stream, id, end: { ...stream.end, channel } };
}

/** The link split now (whatever the machine thought), on a fresh stream: see rebased(). */
export function splitRebased<O>(stream: LinkStream<O>, id: string, now: number, timers: LinkTimers): LinkStream<O> {
  return rebased(step<O, never>(stream, { type: "bounced" }, now, timers).stream, id, now);
}

export function step<O, I>(stream: LinkStream<O>, event: LinkEvent<O, I>, now: number, timers: LinkTimers): { stream: LinkStream<O>; actions: readonly LinkAction<O, I>[] } {
  if (stream.end.kind === "abandoned") return { stream, actions: [] };
  const result = stepEstablished(stream.end, event, now, timers);
  return { stream: { ...stream, end: result.link }, actions: result.actions };
}

/**
 * What a received header (and the stanza it came on, when it carries a number) means for this end. A
 * new stream of the other side (it restarted, or re-based its stream at a split) starts at 1 and is
 * followed from there on; when we follow none (we restarted and lost our place), the first stanza
 * seen starts it; on a new link only its 1 does. Stanzas of streams we left, or of an unknown stream
 * in the middle, are not applied: the sender, unacknowledged, sends them again from its first.
 */
export function heard<O, I>(stream: LinkStream<O>, header: LinkHeader | null, item: I | null): { stream: LinkStream<O>; event: LinkEvent<O, I> } {
  const ack = header?.ack !== undefined && header.acked === stream.id ? header.ack : 0;
  const probe = header?.probe ?? false;
  const ignored = { stream, event: { type: "heard", ack, carried: null, probe } } as const;
  if (header?.seq === undefined || header.stream === undefined || item === null) return ignored;
  let next = stream;
  if (stream.peer !== header.stream) {
    if (stream.retired.includes(header.stream) || (header.seq !== 1 && (stream.peer !== null || !stream.lostPlace))) return ignored;
    const channel = { ...stream.end.channel, inbox: { applied: header.seq - 1 } };
    const retired = stream.peer === null ? stream.retired : [...stream.retired, stream.peer].slice(-RETIRED);
    next = { ...stream, peer: header.stream, retired, lostPlace: undefined, end: { ...stream.end, channel } as ReplicaLinkState<O> };
  }
  return { stream: next, event: { type: "heard", ack, carried: { seq: header.seq, item }, probe } };
}

/** The header a transmitted stanza carries. */
export function transmitHeader<O>(stream: LinkStream<O>, seq: number, ack: number): Element {
  return buildLinkHeader({ stream: stream.id, seq, ...(stream.peer !== null && { ack, acked: stream.peer }), probe: false });
}

/** A header alone, on a message of its own: an acknowledgement, or a probe asking for one. */
export function headerMessage<O>(stream: LinkStream<O>, from: string, to: string, id: string, ack: number, probe: boolean): Element {
  return xml("message", { from, to, id }, buildLinkHeader({ ...(stream.peer !== null && { ack, acked: stream.peer }), probe }));
}
