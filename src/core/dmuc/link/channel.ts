// The reliable DMUC2 link (docs/PROTOCOL.md "The reliable link"): the states a link can be in, the
// events and actions of its state machine, and the transitions both roles share (sending, hearing,
// bounces, timers). Pure: no IO and no clock; `now` (ms) is an input of every transition.
import { acknowledge, arrive, emptyInbox, emptyOutbox, enqueue, oldestInFlight, retransmitAll, type Inbox, type Outbox } from "./sequence.js";

export interface LinkTimers {
  /** An applied stanza is acknowledged at the latest this long after (when no traffic carries the ack). */
  readonly ackDelayMs: number;
  /** Unacknowledged this long: everything unacknowledged is sent again (the link turns suspect). */
  readonly resendAfterMs: number;
  /** Unacknowledged (or a keepalive unanswered) this long: the link is split. */
  readonly splitAfterMs: number;
  /** Nothing heard this long: a keepalive probe. */
  readonly keepaliveMs: number;
  /** First interval between probes of a split link; it doubles after each unanswered probe... */
  readonly probeMs: number;
  /** ...up to this. */
  readonly probeMaxMs: number;
  /** After this many unanswered probes the link is abandoned (the other side is gone). */
  readonly maxProbes: number;
}

export const DEFAULT_LINK_TIMERS: LinkTimers = {
  ackDelayMs: 500,
  resendAfterMs: 2_000,
  splitAfterMs: 5_000,
  keepaliveMs: 30_000,
  probeMs: 5_000,
  probeMaxMs: 5 * 60_000,
  // 5 s doubling to 5 min, then every 5 min: about four hours of trying.
  maxProbes: 50,
};

/** The sequence state of one link end, and its traffic clocks (ms). */
export interface Channel<T> {
  readonly outbox: Outbox<T>;
  readonly inbox: Inbox;
  readonly lastHeard: number;
  readonly lastSent: number;
  /** Since when we owe the other side an acknowledgement (null: none owed). */
  readonly ackOwed: number | null;
  /** When our keepalive probe went out with nothing heard since (null: none out). */
  readonly probeSent: number | null;
}

/** What survives a restart: it is committed with every change (docs/PROTOCOL.md "Durability"). */
export interface DurableChannel<T> {
  readonly outbox: Outbox<T>;
  readonly inbox: Inbox;
}

export type SplitReason = "bounce" | "unacknowledged" | "keepalive" | "restart";

/** Primary only: the served domain is being asked whether it has a replica; stanzas are held. */
export interface Discovering<T> {
  readonly kind: "discovering";
  readonly since: number;
  readonly channel: Channel<T>;
}
/** Primary only: `replicate` sent, no answer yet; stanzas are held. */
export interface Linking<T> {
  readonly kind: "linking";
  readonly since: number;
  readonly channel: Channel<T>;
}
/** Up: stanzas are transmitted as they come, acknowledged by the other side. */
export interface Active<T> {
  readonly kind: "active";
  readonly since: number;
  readonly channel: Channel<T>;
}
/** Up, but a stanza went unacknowledged past resendAfterMs: everything unacknowledged was sent again. */
export interface Suspect<T> {
  readonly kind: "suspect";
  readonly since: number;
  readonly channel: Channel<T>;
}
/** Down: stanzas are held; the other side is probed with backoff; anything heard from it heals the link. */
export interface Split<T> {
  readonly kind: "split";
  readonly since: number;
  readonly channel: Channel<T>;
  readonly reason: SplitReason;
  readonly probes: number;
  readonly nextProbe: number;
}
/** Given up: the other side refused the link or never came back. Terminal. */
export interface Abandoned<T> {
  readonly kind: "abandoned";
  readonly since: number;
  readonly channel: Channel<T>;
  readonly reason: "refused" | "no answer" | "gone";
}

export type PrimaryLinkState<T> = Discovering<T> | Linking<T> | Active<T> | Suspect<T> | Split<T> | Abandoned<T>;
export type ReplicaLinkState<T> = Active<T> | Suspect<T> | Split<T> | Abandoned<T>;
/** The states in which a link carries traffic or waits to heal. */
export type Established<T> = Active<T> | Suspect<T> | Split<T>;

/** Something arrived from the other side of the link: its header, and the stanza it carried if any. */
export interface Heard<I> {
  readonly type: "heard";
  /** The other side's cumulative acknowledgement of our stream. */
  readonly ack: number;
  readonly carried: { readonly seq: number; readonly item: I } | null;
  /** A probe: the other side wants an acknowledgement at once. */
  readonly probe: boolean;
}

/** `O`: what this end sends on the link; `I`: what it receives. */
export type LinkEvent<O, I> =
  | { readonly type: "send"; readonly item: O }
  | Heard<I>
  /** A stanza we sent on the link came back as an error saying the other side cannot be reached. */
  | { readonly type: "bounced" }
  | { readonly type: "tick" };

export type PrimaryLinkEvent<O, I> =
  | LinkEvent<O, I>
  | { readonly type: "discovered" }
  | { readonly type: "accepted" }
  | { readonly type: "refused" };

export type LinkAction<O, I> =
  /** Put this stanza on the wire with this header. */
  | { readonly type: "transmit"; readonly seq: number; readonly ack: number; readonly item: O }
  /** A header alone: an acknowledgement, or a probe asking for one. */
  | { readonly type: "ack"; readonly ack: number; readonly probe: boolean }
  /** Apply this stanza from the other side: it is the next in order, and never handed out twice. */
  | { readonly type: "deliver"; readonly item: I }
  /** Primary: ask the discovered replica to replicate the room. */
  | { readonly type: "request" }
  | { readonly type: "split"; readonly reason: SplitReason }
  /** Heard from the other side of a split link again: the held and unacknowledged stanzas follow. */
  | { readonly type: "healed" }
  | { readonly type: "abandoned"; readonly reason: Abandoned<O>["reason"] };

export interface Step<S, O, I> {
  readonly link: S;
  readonly actions: readonly LinkAction<O, I>[];
}

export function newChannel<T>(now: number): Channel<T> {
  return { outbox: emptyOutbox<T>(), inbox: emptyInbox(), lastHeard: now, lastSent: now, ackOwed: null, probeSent: null };
}

export function durable<T>(channel: Channel<T>): DurableChannel<T> {
  return { outbox: channel.outbox, inbox: channel.inbox };
}

/** A link end as a restarted process finds it: what was committed, split until the other side answers. */
export function restoredLink<T>(saved: DurableChannel<T>, now: number): Split<T> {
  const channel: Channel<T> = { ...newChannel<T>(now), outbox: saved.outbox, inbox: saved.inbox };
  return { kind: "split", since: now, channel, reason: "restart", probes: 0, nextProbe: now };
}

/** Holds a stanza (link not up): numbered now, transmitted when the link is up. */
export function hold<T>(channel: Channel<T>, item: T): Channel<T> {
  return { ...channel, outbox: enqueue(channel.outbox, item, null).outbox };
}

/** Transmits everything unacknowledged again, in order, each carrying our current ack. */
function resend<T, I>(channel: Channel<T>, now: number, restartClocks: boolean): { channel: Channel<T>; actions: LinkAction<T, I>[] } {
  const outbox = restartClocks ? retransmitAll(channel.outbox, now) : channel.outbox;
  const ack = channel.inbox.applied;
  const actions = outbox.unacked.map((e): LinkAction<T, I> => ({ type: "transmit", seq: e.seq, ack, item: e.item }));
  if (actions.length === 0) return { channel: { ...channel, outbox }, actions };
  return { channel: { ...channel, outbox, lastSent: now, ackOwed: null }, actions };
}

/** The link is up (accepted, or healed): everything held or unacknowledged goes out now. */
export function goActive<T, I>(channel: Channel<T>, now: number, first: LinkAction<T, I>[] = []): Step<Active<T>, T, I> {
  const { channel: sent, actions } = resend<T, I>(channel, now, true);
  return { link: { kind: "active", since: now, channel: { ...sent, probeSent: null } }, actions: [...first, ...actions] };
}

function goSplit<T, I>(channel: Channel<T>, now: number, reason: SplitReason, timers: LinkTimers): Step<Split<T>, T, I> {
  return {
    link: { kind: "split", since: now, channel: { ...channel, probeSent: null }, reason, probes: 0, nextProbe: now + timers.probeMs },
    actions: [{ type: "split", reason }],
  };
}

function sendOn<T, I>(link: Established<T>, item: T, now: number): Step<Established<T>, T, I> {
  const channel = link.channel;
  if (link.kind === "split") return { link: { ...link, channel: hold(channel, item) }, actions: [] };
  const { outbox, entry } = enqueue(channel.outbox, item, now);
  const ack = channel.inbox.applied;
  return { link: { ...link, channel: { ...channel, outbox, lastSent: now, ackOwed: null } }, actions: [{ type: "transmit", seq: entry.seq, ack, item }] };
}

function hear<T, I>(link: Established<T>, event: Heard<I>, now: number): Step<Established<T>, T, I> {
  let channel: Channel<T> = { ...link.channel, lastHeard: now, probeSent: null, outbox: acknowledge(link.channel.outbox, event.ack) };
  const delivered: LinkAction<T, I>[] = [];
  let ackNow = event.probe;
  if (event.carried) {
    const { inbox, arrival } = arrive(channel.inbox, event.carried.seq);
    channel = { ...channel, inbox };
    if (arrival === "apply") {
      delivered.push({ type: "deliver", item: event.carried.item });
      channel = { ...channel, ackOwed: channel.ackOwed ?? now };
    } else {
      // A duplicate means our ack was lost; a gap means something before it was: say where we are.
      ackNow = true;
    }
  }
  let step: Step<Established<T>, T, I>;
  if (link.kind === "split") step = goActive(channel, now, [{ type: "healed" }, ...delivered]);
  else if (link.kind === "suspect" && oldestInFlight(channel.outbox) === null) step = { link: { kind: "active", since: now, channel }, actions: delivered };
  else step = { link: { ...link, channel }, actions: delivered };
  if (!ackNow || step.actions.some((a) => a.type === "transmit")) return step;
  const acked = step.link.channel;
  return {
    link: { ...step.link, channel: { ...acked, ackOwed: null, lastSent: now } },
    actions: [...step.actions, { type: "ack", ack: acked.inbox.applied, probe: false }],
  };
}

function tickEstablished<T, I>(link: Established<T>, now: number, timers: LinkTimers): Step<Established<T> | Abandoned<T>, T, I> {
  const channel = link.channel;
  if (link.kind === "split") {
    if (now < link.nextProbe) return { link, actions: [] };
    if (link.probes >= timers.maxProbes) {
      return { link: { kind: "abandoned", since: now, channel, reason: "gone" }, actions: [{ type: "abandoned", reason: "gone" }] };
    }
    const probes = link.probes + 1;
    const interval = Math.min(timers.probeMaxMs, timers.probeMs * 2 ** Math.min(probes, 20));
    return {
      link: { ...link, probes, nextProbe: now + interval, channel: { ...channel, lastSent: now, ackOwed: null } },
      actions: [{ type: "ack", ack: channel.inbox.applied, probe: true }],
    };
  }
  const oldest = oldestInFlight(channel.outbox);
  if (oldest !== null && now - oldest >= timers.splitAfterMs) return goSplit(channel, now, "unacknowledged", timers);
  if (channel.probeSent !== null && now - channel.probeSent >= timers.splitAfterMs) return goSplit(channel, now, "keepalive", timers);
  if (link.kind === "active" && oldest !== null && now - oldest >= timers.resendAfterMs) {
    // Keeps the stanzas' first transmission times: the split still comes splitAfterMs after it.
    const { channel: sent, actions } = resend<T, I>(channel, now, false);
    return { link: { kind: "suspect", since: now, channel: sent }, actions };
  }
  if (channel.probeSent === null && now - channel.lastHeard >= timers.keepaliveMs) {
    return {
      link: { ...link, channel: { ...channel, probeSent: now, lastSent: now, ackOwed: null } },
      actions: [{ type: "ack", ack: channel.inbox.applied, probe: true }],
    };
  }
  if (channel.ackOwed !== null && now - channel.ackOwed >= timers.ackDelayMs) {
    return { link: { ...link, channel: { ...channel, ackOwed: null, lastSent: now } }, actions: [{ type: "ack", ack: channel.inbox.applied, probe: false }] };
  }
  return { link, actions: [] };
}

/** The transitions of a link that is up or split, the same in both roles. */
export function stepEstablished<T, I>(link: Established<T>, event: LinkEvent<T, I>, now: number, timers: LinkTimers): Step<Established<T> | Abandoned<T>, T, I> {
  switch (event.type) {
    case "send":
      return sendOn(link, event.item, now);
    case "heard":
      return hear(link, event, now);
    case "bounced":
      return link.kind === "split" ? { link, actions: [] } : goSplit(link.channel, now, "bounce", timers);
    case "tick":
      return tickEstablished<T, I>(link, now, timers);
  }
}
