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
import { send, type Effect } from "../core/effects.js";
import { errorReply, mayAnswerWithError, NS } from "../xmpp/stanza.js";
import { loadLinks, loadReplicas, loadRoomHistory, loadRooms, loadTombstones } from "./room-loader.js";
import { trimHistory } from "../core/room/history.js";
import { RoomTable } from "../core/room-table.js";
import { DEFAULT_ROOM_CONFIG } from "../core/room/types.js";
import { RoomStore } from "./room-store.js";
import { DomainLease } from "../db/domain-lease.js";
import { AdminError, runAdminCommand, type AdminCommand } from "../../plugins/admin-commands.js";
import { serveAdminChannel, type AdminReply } from "./admin-channel.js";
import { GatewayMetrics } from "./metrics.js";
import { logRoomChanges } from "./room-events.js";
import { send as sendHttp, startHttp, stopHttp, type Handler } from "./http.js";
import { consoleRoutes } from "./console.js";
import { Pseudonymiser } from "../commands/export-format.js";
import { VERSION } from "../version.js";
import type { Server } from "node:http";
import { ArchiveReader } from "./archive-reader.js";
import { listenForImportedRooms, ROOM_SERVED_CHANNEL } from "./room-notifications.js";
import { purgeExpired } from "./retention.js";
import { StanzaWriter } from "./delivery/stanza-writer.js";
import { LaneUndo } from "./lane-undo.js";

const TICK_MS = 1000;
/** Retention purges run a minute after start, then hourly. */
const PURGE_FIRST_MS = 60_000;
const PURGE_EVERY_MS = 3_600_000;
/** Stanzas held for one room while its history is read (a flood beyond it is dropped). */
const HELD_LIMIT = 1000;
const HISTORY_READ_TIMEOUT_MS = 2000;

/** The bare room JID a stanza is addressed to, or undefined for the service itself (or anything odd). */
function roomOf(to: string | undefined): string | undefined {
  const bare = to?.split("/")[0];
  return bare && bare.includes("@") ? bare : undefined;
}

/** The MUC service with the plugins as configured (the gateway's, and the command line's when no gateway runs). */
export function createService(config: GatewayConfig): MucService {
  return new MucService(
    {
      domain: config.domain,
      admins: new Set(config.admins),
      name: "Chatrooms",
      localDomain: config.localDomain,
      auditTraffic: config.auditTraffic,
      retention: retentionLimits(config),
      roomCreation: config.roomCreation,
      tombstoneDays: config.tombstoneDays,
      roomDefaults: {
        ...DEFAULT_ROOM_CONFIG,
        public: config.roomDefaultPublic,
        persistent: config.roomDefaultPersistent,
        historyLength: Math.min(config.roomDefaultHistory, config.maxHistoryMessages),
        whois: config.roomDefaultWhois ?? DEFAULT_ROOM_CONFIG.whois,
      },
      maxHistoryChars: config.maxHistoryKb * 1024,
      roomQuota: { maxRooms: config.maxRooms, maxRoomsPerUser: config.maxRoomsPerUser },
      flood: { joinRate: config.joinRate, joinBurst: config.joinBurst, presenceRate: config.presenceRate, presenceBurst: config.presenceBurst, roomPresenceRate: config.roomPresenceRate },
    },
    createPlugins({
      maxHistoryMessages: config.maxHistoryMessages,
      maxBodyChars: config.maxBodyChars,
      input: { maxSubjectChars: config.maxSubjectChars, maxStanzaBytes: config.maxStanzaBytes, maxDepth: config.maxDepth, maxChildren: config.maxChildren },
      ratePerSecond: config.rateLimitPerSecond,
      burst: config.rateLimitBurst,
      occupantPingSeconds: config.occupantPingSeconds,
      links: { keepaliveSeconds: config.keepaliveSeconds, linkTimeoutSeconds: config.linkTimeoutSeconds, splitPingSeconds: config.splitPingSeconds, splitAway: config.splitAway, trustPrimaryEnter: config.trustPrimaryEnter, splitEntry: config.splitEntry },
    }),
  );
}

/** Every room, link and replicated room as stored. */
export async function loadServiceState(database: Database, config: GatewayConfig, log: Logger): Promise<ServiceState> {
  const empty = emptyServiceState();
  const rooms = RoomTable.from(await loadRooms(database.dataSource, config.maxHistoryMessages, log, config.maxHistoryKb * 1024));
  const now = Date.now();
  const state: ServiceState = {
    ...empty,
    rooms,
    dmuc: { ...empty.dmuc, links: await loadLinks(database.dataSource, rooms, now), replicated: await loadReplicas(database.dataSource, now, log) },
    tombstones: await loadTombstones(database.dataSource),
  };
  log.info("gateway.rooms_restored", {
    rooms: state.rooms.size,
    occupants: [...state.rooms.values()].reduce((n, r) => n + r.occupants.size, 0),
    links: [...state.dmuc.links.values()].reduce((n, l) => n + l.size, 0),
    replicated: state.dmuc.replicated.size,
  });
  return state;
}

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
  /** Stanzas of rooms whose history is being read back, by lane. */
  private readonly heldForHistory = new Map<string, Element[]>();
  private readonly metrics: GatewayMetrics;
  private http: Server | null = null;
  private readonly startedAt = new Date();
  /** Stops listening for rooms imported while the gateway runs. */
  private stopListening: (() => Promise<void>) | null = null;
  private purger: NodeJS.Timeout | null = null;
  private purging: Promise<void> | null = null;
  private readonly store: RoomStore;
  /** Rooms as they were before their writes began to wait, to undo them if the database is away too long. */
  private readonly undo = new LaneUndo();

  private constructor(
    private readonly config: GatewayConfig,
    private readonly log: Logger,
    private readonly database: Database,
    private readonly service: MucService,
    private readonly connection: ComponentConnection,
    private state: ServiceState,
    private readonly lease: DomainLease,
  ) {
    this.metrics = new GatewayMetrics({
      state: () => this.state,
      xmppOnline: () => connection.online,
      health: () => this.runner.health,
      databaseAnswers: async () => (await this.databaseProblem()) === null,
    });
    this.store = new RoomStore(database.dataSource, config.domain);
    // Stanzas go out through the StanzaWriter: serialised once per fan-out, one socket write, and
    // multicast through the server when it offers it (issue 14).
    const writer = new StanzaWriter(connection, config.domain, config.localDomain, log);
    connection.on("online", () => void writer.discover());
    connection.on("offline", () => writer.reset());
    connection.on("stanza", writer.notice);
    this.runner = new EffectRunner(this.store, writer.send, log, new ArchiveReader(database.dataSource, log), config.writeQueueLimit, this.metrics, config.writeWaitSeconds * 1000, {
      mayWithdraw: (lane) => this.undo.mayUndo(lane, this.state),
      withdrawn: (lane, origins) => this.withdrawn(lane, origins),
      idle: (lane) => this.undo.idle(lane),
    });
  }

  /**
   * Opens the database (migrating it), takes the domain's lock (one gateway per domain and database),
   * restores the rooms, then connects to the XMPP server; `signal` stops it halfway.
   */
  static async start(config: GatewayConfig, log: Logger, signal?: AbortSignal): Promise<Gateway> {
    const database = await openDatabase(config, log);
    let state: ServiceState;
    let lease: DomainLease;
    // The gateway exists only once connected; commands that arrive before wait for it.
    let ready: (gateway: Gateway) => void = () => undefined;
    const gatewayReady = new Promise<Gateway>((resolve) => (ready = resolve));
    try {
      if (signal?.aborted) throw new StartAborted();
      lease = await DomainLease.acquire(database.url, config.domain, "gateway", log, {
        onTaken: (error) => void gatewayReady.then((gateway) => gateway.fail(error)),
        onConnected: (client) => serveAdminChannel(client, config.domain, async (command) => (await gatewayReady).runAdmin(command), log),
      });
    } catch (err) {
      await database.close();
      throw err;
    }
    try {
      state = await loadServiceState(database, config, log);
    } catch (err) {
      await lease.release();
      await database.close();
      throw err;
    }
    const service = createService(config);
    const connection = new ComponentConnection({
      service: config.xmppService,
      domain: config.domain,
      secret: config.secret,
      log,
      traceStanzas: config.xmppDebug,
    });
    const gateway = new Gateway(config, log, database, service, connection, state, lease);
    connection.on("stanza", (stanza) => gateway.receive(stanza));
    // Also at start: the occupants restored from the database are verified before the room counts on them.
    connection.on("online", () => gateway.online());
    try {
      // Up before the XMPP connection: /healthz answers and /readyz says what is missing meanwhile.
      if (config.httpListen) gateway.http = await startHttp(config.httpListen, gateway.routes(), log);
      await connection.start(signal);
    } catch (err) {
      if (gateway.http) await stopHttp(gateway.http);
      await connection.stop();
      await lease.release();
      await database.close();
      throw signal?.aborted ? new StartAborted() : err;
    }
    ready(gateway);
    gateway.ticker = setInterval(() => gateway.tick(), TICK_MS);
    gateway.stopListening = listenForImportedRooms(database.dataSource, log, (roomJid) => void gateway.adoptImportedRoom(roomJid));
    gateway.purger = setTimeout(function purge() {
      gateway.purge();
      gateway.purger = setTimeout(purge, PURGE_EVERY_MS);
    }, PURGE_FIRST_MS);
    log.info("gateway.started", { domain: config.domain, embeddedDatabase: database.embedded });
    return gateway;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.log.info("gateway.stopping");
    if (this.ticker) clearInterval(this.ticker);
    await this.stopListening?.();
    if (this.purger) clearTimeout(this.purger);
    await this.purging;
    // Pending writes are committed (and their stanzas sent) before the connection closes.
    await this.runner.drain();
    await this.connection.stop();
    if (this.http) await stopHttp(this.http);
    await this.lease.release();
    await this.database.close();
    this.log.info("gateway.stopped");
  }

  private fail: (error: Error) => void = () => undefined;
  /** Resolves when the gateway must stop on its own: another gateway took its domain. */
  readonly failed: Promise<Error> = new Promise((resolve) => (this.fail = resolve));

  /** An operator's command (`dmuc-gateway rooms ...`), answered once its writes are committed. */
  private async runAdmin(command: AdminCommand): Promise<AdminReply> {
    let outcome;
    try {
      outcome = this.service.operate(this.state, liveContext(), (request, rooms) => runAdminCommand(rooms, request, command));
    } catch (err) {
      if (err instanceof AdminError) return { ok: false, error: err.message, kind: err.kind };
      throw err;
    }
    this.metrics.adminCommand(command.op);
    logRoomChanges(this.log, this.state, outcome.state);
    this.state = outcome.state;
    this.runner.submit(outcome.effects);
    await this.runner.drain();
    return { ok: true, result: outcome.result };
  }

  /** The HTTP endpoint's pages. */
  private routes(): Map<string, Handler> {
    const console = this.config.consoleToken
      ? consoleRoutes(this.config.consoleToken, {
          domain: this.config.domain,
          version: VERSION,
          startedAt: this.startedAt,
          state: () => this.state,
          notReady: () => this.notReady(),
          lastNetjoin: (role, room, peer) => this.metrics.links.lastNetjoin(role, room, peer),
          searchAudit: async (search) =>
            (await import("./audit-search.js")).searchAudit(this.database.dataSource, search, new Pseudonymiser(this.config.pseudonymiseExports ? this.config.secret : null)),
        })
      : [];
    return new Map<string, Handler>([
      ...console,
      ["/metrics", async (_request, response) => sendHttp(response, 200, this.metrics.registry.contentType, await this.metrics.registry.metrics())],
      ["/healthz", (_request, response) => sendHttp(response, 200, "text/plain", "ok\n")],
      [
        "/readyz",
        async (_request, response) => {
          const problems = await this.notReady();
          sendHttp(response, problems.length === 0 ? 200 : 503, "text/plain", problems.length === 0 ? "ready\n" : problems.map((p) => `${p}\n`).join(""));
        },
      ],
    ]);
  }

  /** What keeps the gateway from serving: the XMPP stream down, the database not answering. */
  private async notReady(): Promise<string[]> {
    const problems: string[] = [];
    if (!this.connection.online) problems.push("xmpp: not connected");
    const database = await this.databaseProblem();
    if (database !== null) problems.push(`database: ${database}`);
    return problems;
  }

  /** Why the database does not answer a query within 2 s, or null when it does. */
  private async databaseProblem(): Promise<string | null> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.database.dataSource.query("SELECT 1"),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("no answer within 2 s")), 2_000))),
      ]);
      return null;
    } catch (err) {
      return (err as Error).message;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Serves a room the import command has just written. A room already served with people in it is
   * left as it is (its stored archive is read per query anyway); otherwise it is (re)loaded.
   */
  private async adoptImportedRoom(roomJid: string): Promise<void> {
    try {
      const loaded = (await loadRooms(this.database.dataSource, this.config.maxHistoryMessages, this.log, this.config.maxHistoryKb * 1024, roomJid)).get(roomJid);
      if (!loaded) return;
      const current = this.state.rooms.get(roomJid);
      if (current && current.occupants.size > 0) {
        this.log.warn("import.room_in_use", { room: roomJid });
      } else {
        this.state = { ...this.state, rooms: this.state.rooms.with(roomJid, loaded) };
        this.log.info("import.room_served", { room: roomJid, history: loaded.history.length, affiliations: loaded.affiliations.size });
      }
      await this.database.dataSource.query(`SELECT pg_notify($1, $2)`, [ROOM_SERVED_CHANNEL, roomJid]);
    } catch (err) {
      this.log.error("import.room_load_failed", { room: roomJid, error: err });
    }
  }

  /** Deletes history and audit rows past their retention; each room's purge is audited. */
  private purge(): void {
    if (this.purging) return;
    this.purging = purgeExpired(this.database.dataSource, this.store, retentionLimits(this.config), new Date()).then(
      (summary) => {
        if (summary.rooms > 0) this.log.info("retention.purged", { ...summary });
      },
      (err: unknown) => this.log.error("retention.purge_failed", { error: err }),
    ).finally(() => (this.purging = null));
  }

  private tick(): void {
    const before = this.state;
    const outcome = this.service.tick(this.state, liveContext());
    this.state = outcome.state;
    logRoomChanges(this.log, before, this.state);
    // A DMUC2 acknowledgement says what was applied: it waits for every pending write, whichever room's.
    if (carriesLinkAck(outcome.effects)) this.runner.submitAfterWrites(outcome.effects);
    else this.runner.submit(outcome.effects);
  }

  /** The write path's state: degraded while the database is away, and how full its queue is (a gauge). */
  get health(): EffectRunnerHealth {
    return this.runner.health;
  }

  private online(): void {
    const outcome = this.service.online(this.state, liveContext());
    this.state = outcome.state;
    this.runner.submit(outcome.effects);
  }

  private receive(stanza: Element): void {
    this.metrics.stanzaReceived(stanza);
    const lane = laneOf(stanza);
    // While a room's history is read back from the database, its stanzas wait, in order; other rooms go on.
    const held = this.heldForHistory.get(lane);
    if (held) {
      if (held.length < HELD_LIMIT) held.push(stanza);
      else this.log.warn("history.held_dropped", { to: stanza.attrs.to, from: stanza.attrs.from });
      return;
    }
    if (stanza.name === "presence" && stanza.attrs.type === undefined && String(stanza.attrs.to ?? "").includes("/") && this.state.rooms.get(lane)?.historyOnDisk) {
      this.heldForHistory.set(lane, [stanza]);
      void this.readHistory(lane);
      return;
    }
    this.process(stanza, lane);
  }

  /** Puts a room's recent history back in memory before the entry that needs it (issue 16 point 8). */
  private async readHistory(lane: string): Promise<void> {
    try {
      const read = loadRoomHistory(this.database.dataSource, lane, this.config.maxHistoryMessages, this.config.maxHistoryKb * 1024, this.log);
      const entries = await Promise.race([read, new Promise<never>((_, reject) => setTimeout(() => reject(new Error("timed out")), HISTORY_READ_TIMEOUT_MS).unref())]);
      const room = this.state.rooms.get(lane);
      if (room?.historyOnDisk) {
        const history = trimHistory(entries, room.config.historyLength, this.config.maxHistoryKb * 1024);
        this.state = { ...this.state, rooms: this.state.rooms.with(lane, { ...room, history, historyOnDisk: false }) };
      }
    } catch (err) {
      // The database is away: the entry goes on without history rather than wait for it.
      this.log.warn("history.read_failed", { room: lane, error: err });
    } finally {
      const held = this.heldForHistory.get(lane) ?? [];
      this.heldForHistory.delete(lane);
      for (const stanza of held) this.process(stanza, lane);
    }
  }

  private process(stanza: Element, lane: string): void {
    try {
      const before = this.state;
      const outcome = this.service.handle(this.state, stanza, liveContext());
      // Past the queue's bound (the database is away), a stanza that needs a write changes nothing and
      // is answered wait/resource-constraint; leaving a room is always let through (bounded by sessions).
      if (!this.runner.accepts(outcome.effects) && !(stanza.name === "presence" && stanza.attrs.type === "unavailable")) {
        this.refuseForQueue(stanza, lane);
        return;
      }
      this.state = outcome.state;
      logRoomChanges(this.log, before, this.state, roomOf(stanza.attrs.to));
      const queuedBefore = this.runner.isBusy(lane);
      // An IQ get reads: its answer never waits behind the room's pending writes.
      this.runner.submit(outcome.effects, lane, stanza.name === "iq" && stanza.attrs.type === "get", stanza);
      this.undo.handled(lane, before, this.state, queuedBefore, this.runner.isBusy(lane));
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
    this.answerWait(stanza, lane);
  }

  /**
   * The room's writes waited `DMUC_WRITE_WAIT` for the database and were taken out unstored and
   * unsent: the room is put back as it was before them and their stanzas are answered (lane-undo.ts).
   */
  private withdrawn(lane: string, origins: Element[]): void {
    const before = this.state;
    this.state = this.undo.undo(lane, this.state);
    logRoomChanges(this.log, before, this.state, lane);
    const room = this.state.rooms.get(lane);
    for (const stanza of origins) {
      const answer = LaneUndo.answerFor(stanza, room);
      if (answer === "again") this.process(stanza, lane);
      else if (answer === "refuse") this.answerWait(stanza, lane);
    }
  }

  private answerWait(stanza: Element, lane: string): void {
    if (!mayAnswerWithError(stanza)) return;
    const text = "The service cannot store anything right now; try again in a moment";
    this.runner.submit([send(errorReply(stanza, { type: "wait", condition: "resource-constraint", text, by: lane }))], lane, true);
  }

  get domain(): string {
    return this.config.domain;
  }
}

/** Whether effects send a DMUC2 link header with an acknowledgement (docs/PROTOCOL.md "Durability"). */
function carriesLinkAck(effects: readonly Effect[]): boolean {
  return effects.some((e) => e.kind === "send" && e.stanza.getChild("link", NS.DMUC)?.attrs.ack !== undefined);
}

/** The lane of a stanza: its recipient's bare JID (a room, or the service domain), as sent. */
function laneOf(stanza: Element): string {
  const to = String(stanza.attrs.to ?? "");
  const slash = to.indexOf("/");
  return (slash === -1 ? to : to.slice(0, slash)).toLowerCase();
}

function retentionLimits(config: GatewayConfig) {
  return { defaultDays: config.retentionDays, minDays: config.retentionMinDays, maxDays: config.retentionMaxDays };
}
