// What operators see of the DMUC2 links (metrics and console), read from outside the core: each link
// end's state and lag from the service state at the time of asking, and the durations of splits and
// netjoins from the log events the core emits (dmuc.link_split, dmuc.link_up, dmuc.netjoin_sent,
// dmuc.link_healed) as the effect runner performs them. Nothing here changes the core's state.
import type { Element } from "@xmpp/xml";
import type { Effect } from "../core/effects.js";
import type { ServiceState } from "../core/service.js";
import { oldestInFlight } from "../core/dmuc/link/sequence.js";
import type { LinkStream } from "../core/dmuc/link/stream.js";
import { parseLinkHeader } from "../core/dmuc/wire.js";

export type LinkRole = "primary" | "replica";

/** One end of a DMUC2 link as operators see it. */
export interface LinkEnd {
  /** This gateway's role on the link: primary (the room is ours, the peer a replica) or replica. */
  role: LinkRole;
  room: string;
  /** The other end: the replica's JID, or the room's primary. */
  peer: string;
  /** The user domain a replica serves (primary's end), or the room's domain (replica's end). */
  domain: string;
  /** The room's view: negotiating, syncing, active, split (replica: active or split). */
  state: string;
  /** The reliable link's machine: discovering, linking, active, suspect (resending), split, abandoned. */
  stream: string;
  /** Stanzas sent or held on the link and not acknowledged by the other end. */
  unacked: number;
  /** Age of the oldest stanza transmitted and not acknowledged (s); 0 when none is in flight. */
  oldestUnackedSeconds: number;
  /**
   * While split: the messages the netjoin will carry across. Primary: the room's messages since the
   * split (as held in memory); replica: its users' messages queued for the primary. 0 when not split.
   */
  splitBacklog: number;
  /** Since when the room is split on this link (ms), or null. */
  splitSince: number | null;
  lastHeard: number;
}

function lag(stream: LinkStream<unknown>, now: number): { unacked: number; oldestUnackedSeconds: number } {
  const outbox = stream.end.channel.outbox;
  const oldest = oldestInFlight(outbox);
  return { unacked: outbox.unacked.length, oldestUnackedSeconds: oldest === null ? 0 : Math.max(0, now - oldest) / 1000 };
}

/** Every link end of the gateway, hosted rooms' links first. */
export function linkEnds(state: ServiceState, now: number): LinkEnd[] {
  const ends: LinkEnd[] = [];
  for (const [room, replicas] of state.dmuc.links) {
    for (const link of replicas.values()) {
      const stream = link.stream as LinkStream<unknown>;
      const since = link.state === "split" ? link.splitSince ?? null : null;
      const splitBacklog = since === null ? 0 : (state.rooms.get(room)?.history.filter((e) => e.at.getTime() >= since).length ?? 0);
      ends.push({ role: "primary", room, peer: link.replicaJid, domain: link.domain, state: link.state, stream: stream.end.kind, ...lag(stream, now), splitBacklog, splitSince: link.splitSince ?? null, lastHeard: link.lastHeard });
    }
  }
  for (const copy of state.dmuc.replicated.values()) {
    const stream = copy.link as LinkStream<unknown>;
    const state = copy.splitSince === null ? "active" : "split";
    ends.push({ role: "replica", room: copy.roomJid, peer: copy.primaryJid, domain: copy.primaryJid.split("@")[1] ?? "", state, stream: stream.end.kind, ...lag(stream, now), splitBacklog: copy.splitQueue.length, splitSince: copy.splitSince, lastHeard: copy.lastHeard });
  }
  return ends;
}

/** A netjoin completed: when, how long the merge took, and how long the link had been split. */
export interface NetjoinRecord {
  at: number;
  /** From the other end heard again (or the netjoin sent) to the rooms merged (s). */
  netjoinSeconds: number;
  /** From the split to the rooms merged (s); null when the split began before this process. */
  splitSeconds: number | null;
}

export interface LinkWatchListener {
  netjoined(role: LinkRole, record: NetjoinRecord): void;
  resent(): void;
}

interface Episode {
  splitAt: number | null;
  netjoinStartedAt: number | null;
}

/** Links remembered at most (episodes and last netjoins); the oldest are forgotten first. */
const REMEMBERED = 10_000;

const keyOf = (role: LinkRole, room: string, peer: string) => `${role} ${room} ${peer}`;

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > REMEMBERED) map.delete(map.keys().next().value!);
}

/**
 * Follows the link events of the effects performed and the link headers of the stanzas sent. A
 * replica's events name only the room: its peer is the room itself (one primary per room).
 */
export class LinkWatch {
  private readonly episodes = new Map<string, Episode>();
  private readonly netjoins = new Map<string, NetjoinRecord>();
  /** Our streams' highest sequence number sent: a number sent again is a resend. */
  private readonly highestSent = new Map<string, number>();

  constructor(private readonly listener: LinkWatchListener) {}

  /** The last netjoin of a link end since this process started, or undefined. */
  lastNetjoin(role: LinkRole, room: string, peer: string): NetjoinRecord | undefined {
    return this.netjoins.get(keyOf(role, room, role === "replica" ? room : peer));
  }

  sent(stanza: Element): void {
    if (!stanza.getChild("link")) return;
    const header = parseLinkHeader(stanza);
    if (header?.stream === undefined || header.seq === undefined) return;
    const highest = this.highestSent.get(header.stream) ?? 0;
    if (header.seq <= highest) this.listener.resent();
    else remember(this.highestSent, header.stream, header.seq);
  }

  performed(effects: readonly Effect[], now: number): void {
    for (const effect of effects) {
      if (effect.kind !== "log" || !effect.event.startsWith("dmuc.")) continue;
      const room = effect.fields.room;
      if (typeof room !== "string") continue;
      const replica = effect.fields.replica;
      const [role, peer]: [LinkRole, string] = typeof replica === "string" ? ["primary", replica] : ["replica", room];
      const key = keyOf(role, room, peer);
      const episode = this.episodes.get(key);
      switch (effect.event) {
        case "dmuc.link_split":
          if (episode?.splitAt == null) remember(this.episodes, key, { splitAt: now, netjoinStartedAt: null });
          break;
        case "dmuc.link_up":
        case "dmuc.netjoin_sent":
          if (episode?.netjoinStartedAt == null) remember(this.episodes, key, { splitAt: episode?.splitAt ?? null, netjoinStartedAt: now });
          break;
        case "dmuc.link_healed": {
          // A restored replica copy's split began before this process: the event says since when.
          const splitSince = typeof effect.fields.splitSince === "number" ? effect.fields.splitSince : null;
          const splitAt = episode?.splitAt ?? splitSince;
          const started = episode?.netjoinStartedAt ?? now;
          const record = { at: now, netjoinSeconds: (now - started) / 1000, splitSeconds: splitAt === null ? null : Math.max(0, now - splitAt) / 1000 };
          this.episodes.delete(key);
          remember(this.netjoins, key, record);
          this.listener.netjoined(role, record);
          break;
        }
        case "dmuc.replica_gone":
        case "dmuc.primary_gone":
          this.episodes.delete(key);
          break;
      }
    }
  }
}
