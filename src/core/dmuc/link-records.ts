// Keeps the replicas table in step with the primary's links: a write when a link appears, changes
// state or terms, or goes; not for the traffic counters (lastSent, lastHeard), which change all the time.
// And the link's place in the replica's stream (dmuc_link_positions): written in the same transaction
// as the submission that moved it, so that a restarted primary never takes a resent submission twice.
import { store, type Effect } from "../effects.js";
import type { StoredLinkState } from "../store-writes.js";
import type { DmucState, LinkState, ReplicaLink } from "./state.js";

const STORED: Record<LinkState, StoredLinkState> = { negotiating: "negotiating", active: "active", split: "split", syncing: "split" };

function same(a: ReplicaLink, b: ReplicaLink): boolean {
  return STORED[a.state] === STORED[b.state] && a.keepaliveSeconds === b.keepaliveSeconds && a.historyLimit === b.historyLimit && a.splitSince === b.splitSince;
}

/** Whether the replica's stream, as applied here, moved (the primary's own stream is not kept: netjoin replaces it). */
function samePosition(a: ReplicaLink | undefined, b: ReplicaLink): boolean {
  return (a?.stream.peer ?? null) === b.stream.peer && (a?.stream.end.channel.inbox.applied ?? 0) === b.stream.end.channel.inbox.applied;
}

export function linkWrites(before: DmucState["links"], after: DmucState["links"], effects: Effect[]): void {
  if (before === after) return;
  for (const [roomJid, links] of after) {
    for (const link of links.values()) {
      const old = before.get(roomJid)?.get(link.replicaJid);
      if (!old || !same(old, link)) {
        effects.push(
          store({
            op: "link.save",
            roomJid,
            replicaJid: link.replicaJid,
            domain: link.domain,
            state: STORED[link.state],
            keepaliveSeconds: link.keepaliveSeconds,
            historyLimit: link.historyLimit,
            lastSeen: new Date(link.lastHeard),
            splitSince: link.splitSince === undefined ? null : new Date(link.splitSince),
          }),
        );
      }
      if (samePosition(old, link)) continue;
      const position = { outStream: null, outNextSeq: null, inStream: link.stream.peer, inApplied: link.stream.end.channel.inbox.applied, earlyOriginIds: [], catchUp: null };
      effects.push(store({ op: "link.position", roomJid, peerJid: link.replicaJid, position }));
    }
  }
  for (const [roomJid, links] of before) {
    for (const replicaJid of links.keys()) {
      if (after.get(roomJid)?.has(replicaJid)) continue;
      effects.push(store({ op: "link.delete", roomJid, replicaJid }));
      effects.push(store({ op: "link.position.delete", roomJid, peerJid: replicaJid }));
    }
  }
}
