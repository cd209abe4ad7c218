// Prometheus metrics (prom-client) of one gateway: what it holds (rooms, occupants, DMUC2 links by
// state and their lag) and its health, computed at scrape time, and what it does (stanzas in and out
// by kind, fan-out deliveries, commit batches and their latency, database errors, netjoins and their
// durations, stanzas resent on links), counted as it happens. Served on the HTTP endpoint
// (src/shell/http.ts) with the process metrics.
import type { Element } from "@xmpp/xml";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { ServiceState } from "../core/service.js";
import type { Effect } from "../core/effects.js";
import type { EffectObserver, EffectRunnerHealth } from "./effect-runner.js";
import { linkEnds, LinkWatch } from "./link-watch.js";

/** Where the metrics read what they report at scrape time. */
export interface MetricsSource {
  state(): ServiceState;
  xmppOnline(): boolean;
  /** The write path: degraded while the database refuses commits. */
  health(): EffectRunnerHealth;
  /** Whether the database answers now (bounded). */
  databaseAnswers(): Promise<boolean>;
  now?(): number;
}

// Netjoins take from well under a second (a bounce healed) to minutes (a server restarted).
const NETJOIN_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const SPLIT_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600];

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
  private readonly netjoinSeconds: Histogram<"role">;
  private readonly splitSeconds: Histogram<"role">;
  private readonly resent: Counter;
  /** Split and netjoin episodes and resends, from what the effect runner performs and sends. */
  readonly links: LinkWatch;
  private readonly now: () => number;

  constructor(source: MetricsSource) {
    const registers = [this.registry];
    const state = () => source.state();
    const now = (this.now = source.now ?? Date.now);
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
        this.set(source.xmppOnline() ? 1 : 0);
      },
    });
    new Gauge({
      name: "dmuc_database_up",
      help: "1 when the database answered a query within 2 s at this scrape",
      registers,
      async collect() {
        this.set((await source.databaseAnswers()) ? 1 : 0);
      },
    });
    new Gauge({
      name: "dmuc_degraded",
      help: "1 while the database refuses commits and writes wait in the queue (Gateway.health)",
      registers,
      collect() {
        this.set(source.health().degraded ? 1 : 0);
      },
    });
    new Gauge({
      name: "dmuc_degraded_seconds",
      help: "How long the gateway has been degraded (0 when it is not)",
      registers,
      collect() {
        const since = source.health().degradedSince;
        this.set(since === null ? 0 : Math.max(0, now() - since.getTime()) / 1000);
      },
    });
    new Gauge({
      name: "dmuc_write_queue_effects",
      help: "Stanzas and rows waiting on a commit",
      registers,
      collect() {
        this.set(source.health().queuedEffects);
      },
    });
    new Gauge({
      name: "dmuc_write_queue_limit",
      help: "The bound of the write queue (DMUC_WRITE_QUEUE_LIMIT): past it, writes are refused",
      registers,
      collect() {
        const limit = source.health().queueLimit;
        this.set(Number.isFinite(limit) ? limit : -1);
      },
    });
    new Gauge({
      name: "dmuc_link_ends",
      help: "DMUC2 link ends by this gateway's role and the reliable link's state (active, suspect: resending, split...)",
      labelNames: ["role", "state"],
      registers,
      collect() {
        this.reset();
        for (const role of ["primary", "replica"]) for (const linkState of ["active", "suspect", "split"]) this.set({ role, state: linkState }, 0);
        for (const end of linkEnds(state(), now())) this.inc({ role: end.role, state: end.stream });
      },
    });
    new Gauge({
      name: "dmuc_link_unacked_stanzas",
      help: "Stanzas sent or held on a DMUC2 link and not acknowledged by the other end, per link",
      labelNames: ["role", "room", "peer"],
      registers,
      collect() {
        this.reset();
        for (const end of linkEnds(state(), now())) this.set({ role: end.role, room: end.room, peer: end.peer }, end.unacked);
      },
    });
    new Gauge({
      name: "dmuc_link_oldest_unacked_seconds",
      help: "Age of the oldest stanza transmitted on a DMUC2 link and not acknowledged, per link (0: none in flight)",
      labelNames: ["role", "room", "peer"],
      registers,
      collect() {
        this.reset();
        for (const end of linkEnds(state(), now())) this.set({ role: end.role, room: end.room, peer: end.peer }, end.oldestUnackedSeconds);
      },
    });
    new Gauge({
      name: "dmuc_link_split_backlog",
      help: "Per split DMUC2 link: messages the netjoin will carry across (primary: the room's since the split; replica: its users' queued for the primary)",
      labelNames: ["role", "room", "peer"],
      registers,
      collect() {
        this.reset();
        for (const end of linkEnds(state(), now())) if (end.state === "split") this.set({ role: end.role, room: end.room, peer: end.peer }, end.splitBacklog);
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
    this.netjoinSeconds = new Histogram({
      name: "dmuc_netjoin_duration_seconds",
      help: "DMUC2 netjoins: from the other end heard again after a split to both sides merged, by this gateway's role",
      labelNames: ["role"],
      buckets: NETJOIN_BUCKETS,
      registers,
    });
    this.splitSeconds = new Histogram({
      name: "dmuc_split_duration_seconds",
      help: "DMUC2 splits that ended in a netjoin: from the split to both sides merged, by this gateway's role",
      labelNames: ["role"],
      buckets: SPLIT_BUCKETS,
      registers,
    });
    this.resent = new Counter({ name: "dmuc_link_resent_total", help: "Stanzas sent again on DMUC2 links (unacknowledged in time, or after a heal)", registers });
    this.links = new LinkWatch({
      netjoined: (role, record) => {
        this.netjoinSeconds.observe({ role }, record.netjoinSeconds);
        if (record.splitSeconds !== null) this.splitSeconds.observe({ role }, record.splitSeconds);
      },
      resent: () => this.resent.inc(),
    });
    for (const role of ["primary", "replica"]) {
      this.netjoins.inc({ role }, 0);
      this.netjoinSeconds.zero({ role });
      this.splitSeconds.zero({ role });
    }
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
    this.links.sent(stanza);
  }

  committed(writes: number, seconds: number): void {
    this.batchSize.observe(writes);
    this.commitSeconds.observe(seconds);
  }

  commitFailed(): void {
    this.databaseErrors.inc({ operation: "commit" });
  }

  performed(effects: readonly Effect[]): void {
    this.links.performed(effects, this.now());
    for (const effect of effects) {
      if (effect.kind !== "log") continue;
      // The primary's event names the replica; the replica's names only the room.
      if (effect.event === "dmuc.link_healed") this.netjoins.inc({ role: "replica" in effect.fields ? "primary" : "replica" });
    }
  }
}
