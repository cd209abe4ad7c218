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
import { EffectRunner } from "./effect-runner.js";
import { loadLinks, loadReplicas, loadRooms, loadTombstones } from "./room-loader.js";
import { RoomTable } from "../core/room-table.js";
import { DEFAULT_ROOM_CONFIG } from "../core/room/types.js";
import { RoomStore } from "./room-store.js";

const TICK_MS = 1000;

export class Gateway {
  private stopped = false;
  private readonly runner: EffectRunner;
  /** Drives the service's timers (DMUC2 keepalives, query timeouts). */
  private ticker: NodeJS.Timeout | null = null;

  private constructor(
    private readonly config: GatewayConfig,
    private readonly log: Logger,
    private readonly database: Database,
    private readonly service: MucService,
    private readonly connection: ComponentConnection,
    private state: ServiceState,
  ) {
    this.runner = new EffectRunner(new RoomStore(database.dataSource), (stanza) => connection.send(stanza), log);
  }

  /** Opens the database (migrating it), then connects to the XMPP server. */
  static async start(config: GatewayConfig, log: Logger): Promise<Gateway> {
    const database = await openDatabase(config, log);
    let state: ServiceState;
    try {
      const empty = emptyServiceState();
      const rooms = RoomTable.from(await loadRooms(database.dataSource, config.maxHistoryMessages, log));
      const now = Date.now();
      state = {
        rooms,
        dmuc: { ...empty.dmuc, links: await loadLinks(database.dataSource, rooms, now), replicated: await loadReplicas(database.dataSource, now, log) },
        tombstones: await loadTombstones(database.dataSource),
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
        roomCreation: config.roomCreation,
        tombstoneDays: config.tombstoneDays,
        roomDefaults: {
          ...DEFAULT_ROOM_CONFIG,
          public: config.roomDefaultPublic,
          persistent: config.roomDefaultPersistent,
          historyLength: Math.min(config.roomDefaultHistory, config.maxHistoryMessages),
          whois: config.roomDefaultWhois,
        },
      },
      createPlugins({
        maxHistoryMessages: config.maxHistoryMessages,
        maxBodyChars: config.maxBodyChars,
        ratePerSecond: config.rateLimitPerSecond,
        burst: config.rateLimitBurst,
        occupantPingSeconds: config.occupantPingSeconds,
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
    // Also at start: the occupants restored from the database are verified before the room counts on them.
    connection.on("online", () => gateway.online());
    try {
      await connection.start();
    } catch (err) {
      await database.close();
      throw err;
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

  private online(): void {
    const outcome = this.service.online(this.state, liveContext());
    this.state = outcome.state;
    this.runner.submit(outcome.effects);
  }

  private receive(stanza: Element): void {
    try {
      const outcome = this.service.handle(this.state, stanza, liveContext());
      this.state = outcome.state;
      this.runner.submit(outcome.effects);
    } catch (err) {
      // The service catches handler failures itself; reaching here is a bug, not a reason to exit.
      this.log.error("gateway.stanza_failed", { error: err, name: stanza.name, from: stanza.attrs.from });
    }
  }

  get domain(): string {
    return this.config.domain;
  }
}
