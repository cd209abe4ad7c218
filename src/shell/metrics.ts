// Prometheus metrics (prom-client) of one gateway: what it holds (rooms, occupants, DMUC2 links by
// state), computed from the service state at scrape time, and what it does (stanzas in and out by kind,
// fan-out deliveries, commit batches and their latency, database errors, netjoins), counted as it
// happens. Served on the HTTP endpoint (src/shell/http.ts) with the process metrics.
import type { Element } from "@xmpp/xml";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { ServiceState } from "../core/service.js";
import type { Effect } from "../core/effects.js";
import type { EffectObserver } from "./effect-runner.js";

export class GatewayMetrics implements EffectObserver {
  readonly registry = new Registry();
  private readonly received: Counter<"kind">;
  private readonly sent: Counter<"kind">;
  private readonly fanout: Counter;
  private readonly batchSize: Histogram;
  private readonly commitSeconds: Histogram;
  private readonly databaseErrors: Counter<"operation">;
  private readonly netjoins: Counter<"role">;
  private readonly adminCommands: Counter<"op">;

  constructor(state: () => ServiceState, xmppOnline: () => boolean) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: "dmuc_rooms",
      help: "Rooms this gateway hosts (as DMUC2 primary or for plain XEP-0045 users)",
      registers,
      collect() {
        this.set(state().rooms.size);
      },
    });
    new Gauge({
      name: "dmuc_occupants",
      help: "Occupants (nicknames) in the hosted rooms",
      registers,
      collect() {
        let n = 0;
        for (const room of state().rooms.values()) n += room.occupants.size;
        this.set(n);
      },
    });
    new Gauge({
      name: "dmuc_links",
      help: "DMUC2 links of hosted rooms to replicas, by state",
      labelNames: ["state"],
      registers,
      collect() {
        const counts: Record<string, number> = { negotiating: 0, syncing: 0, active: 0, split: 0 };
        for (const links of state().dmuc.links.values()) for (const link of links.values()) counts[link.state] = (counts[link.state] ?? 0) + 1;
        for (const [linkState, n] of Object.entries(counts)) this.set({ state: linkState }, n);
      },
    });
    new Gauge({
      name: "dmuc_replicated_rooms",
      help: "Remote DMUC2 rooms this gateway serves local users of, as a replica, by whether the link to the primary is split",
      labelNames: ["state"],
      registers,
      collect() {
        let split = 0;
        let total = 0;
        for (const room of state().dmuc.replicated.values()) {
          total++;
          if (room.splitSince !== null) split++;
        }
        this.set({ state: "active" }, total - split);
        this.set({ state: "split" }, split);
      },
    });
    new Gauge({
      name: "dmuc_xmpp_connected",
      help: "1 while the component stream to the XMPP server is up",
      registers,
      collect() {
        this.set(xmppOnline() ? 1 : 0);
      },
    });
    this.received = new Counter({ name: "dmuc_stanzas_received_total", help: "Stanzas received from the XMPP server, by kind", labelNames: ["kind"], registers });
    this.sent = new Counter({ name: "dmuc_stanzas_sent_total", help: "Stanzas sent to the XMPP server, by kind", labelNames: ["kind"], registers });
    this.fanout = new Counter({ name: "dmuc_fanout_deliveries_total", help: "Copies of room broadcasts sent (one per recipient session, or one per DMUC2 replica)", registers });
    this.batchSize = new Histogram({
      name: "dmuc_commit_batch_writes",
      help: "Rows and audit records per group commit",
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
      registers,
    });
    this.commitSeconds = new Histogram({
      name: "dmuc_commit_duration_seconds",
      help: "Duration of one group commit (one transaction)",
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers,
    });
    this.databaseErrors = new Counter({ name: "dmuc_database_errors_total", help: "Failed database operations (a commit retried counts each time)", labelNames: ["operation"], registers });
    this.netjoins = new Counter({ name: "dmuc_netjoins_total", help: "DMUC2 netjoins (a split link healed), by this gateway's role", labelNames: ["role"], registers });
    this.adminCommands = new Counter({ name: "dmuc_admin_commands_total", help: "Operator commands run (command line and XEP-0050), by operation", labelNames: ["op"], registers });
    for (const kind of ["message", "presence", "iq"]) {
      this.received.inc({ kind }, 0);
      this.sent.inc({ kind }, 0);
    }
  }

  stanzaReceived(stanza: Element): void {
    this.received.inc({ kind: stanza.name });
  }

  adminCommand(op: string): void {
    this.adminCommands.inc({ op });
  }

  // EffectObserver
  sentStanza(stanza: Element, fanout: boolean): void {
    this.sent.inc({ kind: stanza.name });
    if (fanout) this.fanout.inc();
  }

  committed(writes: number, seconds: number): void {
    this.batchSize.observe(writes);
    this.commitSeconds.observe(seconds);
  }

  commitFailed(): void {
    this.databaseErrors.inc({ operation: "commit" });
  }

  performed(effects: readonly Effect[]): void {
    for (const effect of effects) {
      if (effect.kind !== "log") continue;
      // The primary's event names the replica; the replica's names only the room.
      if (effect.event === "dmuc.link_healed") this.netjoins.inc({ role: "replica" in effect.fields ? "primary" : "replica" });
    }
  }
}
