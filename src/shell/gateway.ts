// The gateway process: it owns the IO (component connection, database, timers) and runs the pure
// service on every incoming stanza, then executes the effects the service returns.
import type { Element } from "@xmpp/xml";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../log.js";
import { emptyServiceState, MucService, type ServiceState } from "../core/service.js";
import { ComponentConnection } from "../xmpp/connection.js";
import { openDatabase, type Database } from "../db/database.js";
import { createPlugins } from "../../plugins/index.js";
import { liveContext } from "./clock.js";
import { EffectRunner, type EffectRunnerHealth } from "./effect-runner.js";
import { send } from "../core/effects.js";
import { errorReply, mayAnswerWithError } from "../xmpp/stanza.js";
import { loadLinks, loadReplicas, loadRooms } from "./room-loader.js";
import { RoomTable } from "../core/room-table.js";
import { RoomStore } from "./room-store.js";
import { StanzaWriter } from "./delivery/stanza-writer.js";

const TICK_MS = 1000;

/** SIGTERM or SIGINT came while the gateway was starting: it has closed what it opened. */
export class StartAborted extends Error {
  constructor() {
    super("stopped while starting");
    this.name = "StartAborted";
  }
}

export class Gateway {
  private stopped = false;
  private readonly runner: EffectRunner;
  /** Drives the service's timers (DMUC2 keepalives, query timeouts). */
  private ticker: NodeJS.Timeout | null = null;
  private lastQueueRefusalLog = 0;

  private constructor(
    private readonly config: GatewayConfig,
    private readonly log: Logger,
    private readonly database: Database,
    private readonly service: MucService,
    private readonly connection: ComponentConnection,
    private state: ServiceState,
  ) {
    // Stanzas go out through the StanzaWriter: serialised once per fan-out, one socket write, and
    // multicast through the server when it offers it (issue 14).
    const writer = new StanzaWriter(connection, config.domain, config.localDomain, log);
    connection.on("online", () => void writer.discover());
    connection.on("offline", () => writer.reset());
    connection.on("stanza", writer.notice);
    this.runner = new EffectRunner(new RoomStore(database.dataSource), writer.send, log, config.writeQueueLimit);
  }

  /** Opens the database (migrating it), then connects to the XMPP server; `signal` stops it halfway. */
  static async start(config: GatewayConfig, log: Logger, signal?: AbortSignal): Promise<Gateway> {
    const database = await openDatabase(config, log);
    let state: ServiceState;
    try {
      if (signal?.aborted) throw new StartAborted();
      const empty = emptyServiceState();
      const rooms = RoomTable.from(await loadRooms(database.dataSource, config.maxHistoryMessages, log));
      const now = Date.now();
      state = {
        ...empty,
        rooms,
        dmuc: { ...empty.dmuc, links: await loadLinks(database.dataSource, rooms, now), replicated: await loadReplicas(database.dataSource, now, log) },
      };
    } catch (err) {
      await database.close();
      throw err;
    }
    log.info("gateway.rooms_restored", {
      rooms: state.rooms.size,
      occupants: [...state.rooms.values()].reduce((n, r) => n + r.occupants.size, 0),
      links: [...state.dmuc.links.values()].reduce((n, l) => n + l.size, 0),
      replicated: state.dmuc.replicated.size,
    });
    const service = new MucService(
      {
        domain: config.domain,
        admins: new Set(config.admins),
        name: "Chatrooms",
        localDomain: config.localDomain,
        flood: { joinRate: config.joinRate, joinBurst: config.joinBurst, presenceRate: config.presenceRate, presenceBurst: config.presenceBurst, roomPresenceRate: config.roomPresenceRate },
      },
      createPlugins({
        maxHistoryMessages: config.maxHistoryMessages,
        maxBodyChars: config.maxBodyChars,
        input: { maxSubjectChars: config.maxSubjectChars, maxStanzaBytes: config.maxStanzaBytes, maxDepth: config.maxDepth, maxChildren: config.maxChildren },
        ratePerSecond: config.rateLimitPerSecond,
        burst: config.rateLimitBurst,
        links: { keepaliveSeconds: config.keepaliveSeconds, linkTimeoutSeconds: config.linkTimeoutSeconds, splitPingSeconds: config.splitPingSeconds, splitAway: config.splitAway, trustPrimaryEnter: config.trustPrimaryEnter, splitEntry: config.splitEntry },
      }),
    );
    const connection = new ComponentConnection({
      service: config.xmppService,
      domain: config.domain,
      secret: config.secret,
      log,
      traceStanzas: config.xmppDebug,
    });
    const gateway = new Gateway(config, log, database, service, connection, state);
    connection.on("stanza", (stanza) => gateway.receive(stanza));
    try {
      await connection.start(signal);
    } catch (err) {
      await connection.stop();
      await database.close();
      throw signal?.aborted ? new StartAborted() : err;
    }
    gateway.ticker = setInterval(() => gateway.tick(), TICK_MS);
    log.info("gateway.started", { domain: config.domain, embeddedDatabase: database.embedded });
    return gateway;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.log.info("gateway.stopping");
    if (this.ticker) clearInterval(this.ticker);
    // Pending writes are committed (and their stanzas sent) before the connection closes.
    await this.runner.drain();
    await this.connection.stop();
    await this.database.close();
    this.log.info("gateway.stopped");
  }

  private tick(): void {
    const outcome = this.service.tick(this.state, liveContext());
    this.state = outcome.state;
    this.runner.submit(outcome.effects);
  }

  /** The write path's state: degraded while the database is away, and how full its queue is (a gauge). */
  get health(): EffectRunnerHealth {
    return this.runner.health;
  }

  private receive(stanza: Element): void {
    try {
      const lane = laneOf(stanza);
      const outcome = this.service.handle(this.state, stanza, liveContext());
      // Past the queue's bound (the database is away), a stanza that needs a write changes nothing and
      // is answered wait/resource-constraint; leaving a room is always let through (bounded by sessions).
      if (!this.runner.accepts(outcome.effects) && !(stanza.name === "presence" && stanza.attrs.type === "unavailable")) {
        this.refuseForQueue(stanza, lane);
        return;
      }
      this.state = outcome.state;
      // An IQ get reads: its answer never waits behind the room's pending writes.
      this.runner.submit(outcome.effects, lane, stanza.name === "iq" && stanza.attrs.type === "get");
    } catch (err) {
      // The service catches handler failures itself; reaching here is a bug, not a reason to exit.
      this.log.error("gateway.stanza_failed", { error: err, name: stanza.name, from: stanza.attrs.from });
    }
  }

  private refuseForQueue(stanza: Element, lane: string): void {
    const now = Date.now();
    if (now - this.lastQueueRefusalLog >= 1000) {
      this.lastQueueRefusalLog = now;
      this.log.warn("gateway.queue_full", { ...this.runner.health, name: stanza.name, to: stanza.attrs.to });
    }
    if (!mayAnswerWithError(stanza)) return;
    const text = "The service cannot store anything right now; try again in a moment";
    this.runner.submit([send(errorReply(stanza, { type: "wait", condition: "resource-constraint", text, by: lane }))], lane, true);
  }

  get domain(): string {
    return this.config.domain;
  }
}

/** The lane of a stanza: its recipient's bare JID (a room, or the service domain), as sent. */
function laneOf(stanza: Element): string {
  const to = String(stanza.attrs.to ?? "");
  const slash = to.indexOf("/");
  return (slash === -1 ? to : to.slice(0, slash)).toLowerCase();
}
