// One transition function per role of a DMUC2 link (docs/PROTOCOL.md "The reliable link"). The primary
// starts a link (discovering the served domain's replica, then asking it to replicate) and holds what it
// would send until the replica accepts; the replica's link starts active when it accepts. Once up, both
// ends behave alike (channel.ts).
import { goActive, hold, newChannel, stepEstablished, type Active, type LinkTimers, type PrimaryLinkEvent, type PrimaryLinkState, type LinkEvent, type ReplicaLinkState, type Step } from "./channel.js";

/** The primary's end of a new link: it starts by discovering the domain's replica. */
export function discoverLink<T>(now: number): PrimaryLinkState<T> {
  return { kind: "discovering", since: now, channel: newChannel<T>(now) };
}

/** The replica's end of a link it accepted: up at once (the primary transmits when it has our answer). */
export function acceptedLink<T>(now: number): Active<T> {
  return { kind: "active", since: now, channel: newChannel<T>(now) };
}

export function stepPrimary<T, I>(link: PrimaryLinkState<T>, event: PrimaryLinkEvent<T, I>, now: number, timers: LinkTimers): Step<PrimaryLinkState<T>, T, I> {
  switch (link.kind) {
    case "abandoned":
      return { link, actions: [] };
    case "discovering":
    case "linking":
      return stepStarting(link, event, now, timers);
    default:
      if (event.type === "discovered" || event.type === "accepted" || event.type === "refused") return { link, actions: [] };
      return stepEstablished(link, event, now, timers);
  }
}

function stepStarting<T, I>(link: Extract<PrimaryLinkState<T>, { kind: "discovering" | "linking" }>, event: PrimaryLinkEvent<T, I>, now: number, timers: LinkTimers): Step<PrimaryLinkState<T>, T, I> {
  switch (event.type) {
    case "send":
      // Entries and broadcasts while the link is being set up wait on it, in order.
      return { link: { ...link, channel: hold(link.channel, event.item) }, actions: [] };
    case "discovered":
      return link.kind === "discovering" ? { link: { kind: "linking", since: now, channel: link.channel }, actions: [{ type: "request" }] } : { link, actions: [] };
    case "accepted":
      return link.kind === "linking" ? goActive<T, I>(link.channel, now) : { link, actions: [] };
    case "refused":
    case "bounced":
      return abandon<T, I>(link, now, "refused");
    case "tick":
      // The replicate request is answered within the split timeout, like any stanza on the link.
      return link.kind === "linking" && now - link.since >= timers.splitAfterMs ? abandon<T, I>(link, now, "no answer") : { link, actions: [] };
    case "heard":
      // Nothing comes from a replica before it accepted.
      return { link, actions: [] };
  }
}

function abandon<T, I>(link: PrimaryLinkState<T>, now: number, reason: "refused" | "no answer"): Step<PrimaryLinkState<T>, T, I> {
  return { link: { kind: "abandoned", since: now, channel: link.channel, reason }, actions: [{ type: "abandoned", reason }] };
}

export function stepReplica<T, I>(link: ReplicaLinkState<T>, event: LinkEvent<T, I>, now: number, timers: LinkTimers): Step<ReplicaLinkState<T>, T, I> {
  if (link.kind === "abandoned") return { link, actions: [] };
  return stepEstablished(link, event, now, timers);
}
