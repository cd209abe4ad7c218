// Keeps the replicas table in step with the primary's links: a write when a link appears, changes
// state or terms, or goes; not for the traffic counters (lastSent, lastHeard), which change all the time.
import { store, type Effect } from "../effects.js";
import type { StoredLinkState } from "../store-writes.js";
import type { DmucState, LinkState, ReplicaLink } from "./state.js";

const STORED: Record<LinkState, StoredLinkState> = { negotiating: "negotiating", active: "active", split: "split", syncing: "split" };

function same(a: ReplicaLink, b: ReplicaLink): boolean {
  return STORED[a.state] === STORED[b.state] && a.keepaliveSeconds === b.keepaliveSeconds && a.historyLimit === b.historyLimit && a.splitSince === b.splitSince;
}

export function linkWrites(before: DmucState["links"], after: DmucState["links"], effects: Effect[]): void {
  if (before === after) return;
  for (const [roomJid, links] of after) {
    for (const link of links.values()) {
      const old = before.get(roomJid)?.get(link.replicaJid);
      if (old && same(old, link)) continue;
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
  }
  for (const [roomJid, links] of before) {
    for (const replicaJid of links.keys()) {
      if (!after.get(roomJid)?.has(replicaJid)) effects.push(store({ op: "link.delete", roomJid, replicaJid }));
    }
  }
}
