// XEP-0282 DMUC2, the primary role: rooms of this service reach the users of DMUC2 servers through
// one replica per server (src/core/dmuc/primary-*.ts), and everybody else directly, as plain XEP-0045.
import xml from "@xmpp/xml";
import type { Plugin } from "../src/core/service.js";
import { logEffect, send, type Effect } from "../src/core/effects.js";
import { linkWrites } from "../src/core/dmuc/link-records.js";
import type { DmucState } from "../src/core/dmuc/state.js";
import { planDelivery, domainOf } from "../src/core/dmuc/primary-delivery.js";
import { configToReplicas, DEFAULT_PRIMARY_OPTIONS, ensureReplica, isRemoteUserDomain, primaryAnswer, primaryTick, type PrimaryOptions } from "../src/core/dmuc/primary-links.js";
import { withLink, withoutRoomLinks } from "../src/core/dmuc/dmuc-state.js";
import { NS } from "../src/xmpp/stanza.js";
import { holdEntry, retryEnters, settleEntries } from "../src/core/dmuc/primary-entry.js";
import { bareString, jidToString, parseJid } from "../src/xmpp/jid.js";
import { errorCondition, lastMessageReceived, markSplit, startNetjoin, UNREACHABLE } from "../src/core/dmuc/primary-netsplit.js";
import { DMUC, isUnreplicate } from "../src/core/dmuc/wire.js";
import { onCatchUpRequest } from "../src/core/dmuc/primary-catchup.js";
import { replicaLeaves } from "../src/core/dmuc/primary-unreplicate.js";
import { componentNotConnected, directCopyBounced, isAlreadyTaken, replicaGone } from "../src/core/dmuc/primary-replica-down.js";
import { fromReplica, heardFromReplica, isLinkMessage, noLink, tickLinks } from "../src/core/dmuc/primary-link-traffic.js";

/** Who must answer each kind of query: an answer from anyone else is not taken. */
function expectedResponder(q: { kind: string; domain?: string; item?: string; replicaJid?: string }): string | undefined {
  if (q.kind === "disco-items") return q.domain;
  if (q.kind === "disco-info") return q.item;
  return q.replicaJid;
}

/** Runs `body`, then records the link changes it made (link-records.ts). */
function recordingLinks<T>(io: { state: { dmuc: { links: DmucState["links"] } }; effects: Effect[] }, body: () => T): T {
  const before = io.state.dmuc.links;
  const result = body();
  linkWrites(before, io.state.dmuc.links, io.effects);
  return result;
}

export function dmucPrimaryPlugin(options: Partial<PrimaryOptions> = {}): Plugin {
  const settings: PrimaryOptions = { ...DEFAULT_PRIMARY_OPTIONS, ...options };
  return {
    name: "dmuc-primary",
    register(api) {
      const { hooks } = api;
      hooks.on("service/room-handled", (event) => recordingLinks(event.request, () => {
        const { request, roomJid, before, after } = event;
        if (after) {
          const domains = new Set<string>();
          for (const session of after.sessionNicks.keys()) {
            if (before?.sessionNicks.has(session)) continue;
            const domain = domainOf(session);
            if (isRemoteUserDomain(request.settings, domain)) domains.add(domain);
          }
          for (const domain of domains) ensureReplica(request, roomJid, domain, settings);
        }
        planDelivery(event);
        if (!after) request.state = { ...request.state, dmuc: withoutRoomLinks(request.state.dmuc, roomJid) };
        else if (before && (before.config.whois !== after.config.whois || before.config.presenceBroadcast !== after.config.presenceBroadcast || before.config.splitChat !== after.config.splitChat)) {
          configToReplicas(request, after);
        }
      }));

      // An entry whose domain's link is still to be found or set up waits for it (primary-entry.ts).
      hooks.on("service/route", ({ request, to }) => recordingLinks(request, () => {
        if (!isRemoteUserDomain(request.settings, request.from.domain)) return undefined;
        const roomJid = holdEntry(request, to, settings);
        if (roomJid === null) return undefined;
        ensureReplica(request, roomJid, request.from.domain, settings);
        return true as const;
      }));

      // Link traffic from a replica: acknowledgements, probes, its users' submissions.
      hooks.on("service/route", ({ request }) => recordingLinks(request, () => {
        const { stanza } = request;
        const to = parseJid(stanza.attrs.to);
        // Only what is addressed to one of our rooms (a replica's traffic comes to its own JID).
        if (!isLinkMessage(stanza) || !to || to.local === null || to.domain !== request.settings.domain) return undefined;
        const roomJid = bareString(to);
        const replicaJid = jidToString(request.from);
        const link = request.state.dmuc.links.get(roomJid)?.get(replicaJid);
        if (!link) {
          request.effects.push(logEffect("info", "dmuc.unlinked_traffic", { room: roomJid, from: replicaJid }));
          if (stanza.getChild("submit", DMUC)) request.effects.push(send(noLink(stanza, roomJid)));
          return true as const;
        }
        fromReplica(request, api, roomJid, link, stanza, settings);
        return true as const;
      }));

      // A DMUC2 user's groupchat message the room already took (same sender, same origin-id): it came
      // both through the replica and over s2s from the users' server, which sends on what the replica
      // did not acknowledge taking (mod_dmuc_replica). Taken once.
      hooks.on("service/route", ({ request, to }) => {
        if (to.local === null || to.resource !== null || to.domain !== request.settings.domain) return undefined;
        const roomJid = bareString(to);
        const links = request.state.dmuc.links.get(roomJid);
        if (!links || !isAlreadyTaken(request.state.rooms.get(roomJid), request.stanza, request.from, links)) return undefined;
        request.effects.push(logEffect("info", "dmuc.duplicate_dropped", { room: roomJid, from: jidToString(request.from) }));
        return true as const;
      });

      // Bounces: a replica's JID bouncing a room stanza splits its link; a replica user's server
      // bouncing one (remote-server-*) is the same netsplit seen from the user's side, not a departure.
      // A bounce the replica submitted on the link (its check found the session gone) is not a split:
      // it came over the link; the room removes the session as any that bounces.
      hooks.on("service/route", ({ request }) => recordingLinks(request, () => {
        const { stanza } = request;
        if (stanza.name === "iq" || stanza.attrs.type !== "error") return undefined;
        const roomJid = bareString(parseJid(stanza.attrs.to) ?? request.from);
        const links = request.state.dmuc.links.get(roomJid);
        if (!links) return undefined;
        const from = jidToString(request.from);
        const bounced = links.get(bareString(request.from));
        if (bounced) {
          // Its own server saying the replica is not connected: its users are served directly meanwhile.
          if (componentNotConnected(stanza)) replicaGone(request, roomJid, bounced, stanza, settings.markAway);
          else markSplit(request, roomJid, bounced, `bounce ${errorCondition(stanza) ?? ""}`.trim(), settings.markAway);
          return true;
        }
        const behind = [...links.values()].find((l) => l.members.has(from));
        // A direct copy to a user of a replica that is down came back: the netjoin leaves it to the replica.
        if (request.context.submittedBy === undefined && behind?.state === "split" && directCopyBounced(request, roomJid, behind, from, stanza)) return true as const;
        if (!behind || request.context.submittedBy !== undefined || !UNREACHABLE.has(errorCondition(stanza) ?? "")) return undefined;
        markSplit(request, roomJid, behind, `user bounce ${errorCondition(stanza)}`, settings.markAway);
        return true as const;
      }));

      hooks.on("service/route", ({ request }) => recordingLinks(request, () => {
        const { stanza } = request;
        if (stanza.name !== "iq") return undefined;
        const type = stanza.attrs.type;
        if (type === "result" || type === "error") {
          const id = stanza.attrs.id ?? "";
          const pending = request.state.dmuc.pending.get(id);
          if (!pending || expectedResponder(pending) !== jidToString(request.from)) return undefined;
          // An answer from the replica itself (not its server's error for it) is the replica being there.
          if (type === "result" && (pending.kind === "link-iq" || pending.kind === "netjoin")) heardFromReplica(request, api, pending.roomJid, pending.replicaJid, settings);
          if (!primaryAnswer(request, api, id, pending, stanza, settings)) return undefined;
          settleEntries(request, api, settings);
          return true as const;
        }
        const roomJid = stanza.attrs.to ?? "";
        const link = request.state.dmuc.links.get(roomJid)?.get(bareString(request.from));
        // A replica that was split from us and hears from us again asks for netjoin.
        if (link && type === "set" && stanza.getChild("resync", DMUC)) {
          heardFromReplica(request, api, roomJid, link.replicaJid, settings);
          // Hearing from it may have started the netjoin already (the link was split here too).
          const now = request.state.dmuc.links.get(roomJid)?.get(link.replicaJid);
          if (!now) return true as const;
          const split = now.state === "split" || now.state === "syncing" ? now : { ...now, state: "split" as const, splitSince: now.lastHeard, splitAfter: lastMessageReceived(request, roomJid, now) };
          request.effects.push(send(xml("iq", { type: "result", id: stanza.attrs.id, from: roomJid, to: stanza.attrs.from })));
          if (split.state !== "syncing") startNetjoin(request, roomJid, split);
          return true as const;
        }
        // A replica reading what it missed, page by page, after a netjoin.
        const catchUp = stanza.getChild("catchup", DMUC);
        if (link && type === "get" && catchUp) {
          heardFromReplica(request, api, roomJid, link.replicaJid, settings);
          onCatchUpRequest(request, roomJid, link, stanza, catchUp);
          return true as const;
        }
        // A replica none of whose users is in the room leaves it (src/core/dmuc/replica-forget.ts).
        if (link && type === "set" && isUnreplicate(stanza.getChild("unreplicate", DMUC))) {
          replicaLeaves(request, roomJid, link);
          return true as const;
        }
        // Keepalive pings from a replica of one of our rooms.
        if (!link || type !== "get" || !stanza.getChild("ping", NS.PING)) return undefined;
        request.state = { ...request.state, dmuc: withLink(request.state.dmuc, roomJid, { ...link, lastHeard: request.context.now.getTime() }) };
        request.effects.push(send(xml("iq", { type: "result", id: stanza.attrs.id, from: roomJid, to: stanza.attrs.from })));
        return true as const;
      }));

      hooks.on("service/tick", (tick) => recordingLinks(tick, () => {
        primaryTick(tick, api, settings);
        tickLinks(tick, api, settings);
        settleEntries(tick, api, settings);
        retryEnters(tick);
      }));
    },
  };
}
