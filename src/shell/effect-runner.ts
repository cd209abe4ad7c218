// Executes the engine's effects with the invariant of issue 3: a stanza that depends on a write is
// sent only after that write is committed. Writes that arrive together are committed in one
// transaction (group commit), and fan-out never waits on the database per recipient.
//
// Order is kept per lane (a room, or the service domain): a stanza without writes waits only behind
// units of its own lane, so a room whose writes are pending (a flood, a database outage) delays no
// other room, and answers that need no write (disco, ping, occupant lists) never wait. While the
// database is away the units wait in a queue bounded by `queueLimit` effects; the shell refuses
// stanzas that would add writes past it (Gateway), so memory stays bounded. They also wait at most
// `waitLimitMs`: past it a lane's units are withdrawn unstored and unsent, and the lane's owner undoes
// them and answers their senders `wait` (issue 15: nothing delivered that is not stored, nothing lost
// silently); once the database has been away that long, stanzas that need a write are refused at once.
import type { Element } from "@xmpp/xml";
import type { AuditRecord, Effect } from "../core/effects.js";
import type { StoreWrite } from "../core/store-writes.js";
import type { ArchiveQuery, ArchiveReadResult } from "../core/archive/query.js";
import type { Logger } from "../log.js";

export interface WriteSink {
  commit(writes: readonly StoreWrite[], audits: readonly AuditRecord[]): Promise<number>;
  /** Throws while the database cannot be reached (without it: an empty commit). */
  probe?(): Promise<void>;
}

export interface ArchiveSource {
  read(query: ArchiveQuery): Promise<ArchiveReadResult>;
}

export interface EffectRunnerStats {
  batches: number;
  writes: number;
  statements: number;
}

/** Watches the runner for metrics; every method is optional to call cheaply. */
export interface EffectObserver {
  sentStanza(stanza: Element, fanout: boolean): void;
  committed(writes: number, seconds: number): void;
  commitFailed(): void;
  performed(effects: readonly Effect[]): void;
}

interface Unit {
  effects: Effect[];
  lane: string;
  /** The stanza these effects answer, if any: told `wait` if they are withdrawn. */
  origin?: Element;
  queuedAt: number;
}

/** Whoever holds the state the lanes' units came from (the Gateway): undoes withdrawn units. */
export interface LaneOwner {
  /** Whether the lane's queued units may be undone (nothing outside the lane depends on them). */
  mayWithdraw(lane: string): boolean;
  /**
   * The lane's units that needed a write were taken out unstored and unsent (those that needed none
   * were sent): undo them and answer `origins`, in order. The lane is idle now.
   */
  withdrawn(lane: string, origins: Element[]): void;
  /** The lane has nothing queued any more. */
  idle(lane: string): void;
}

/** What operators and the metrics see of the write path. */
export interface EffectRunnerHealth {
  /** The database refused the last commit for a reason worth retrying (it is away). */
  degraded: boolean;
  degradedSince: Date | null;
  /** Effects (stanzas and rows) waiting on a commit, and their stanzas' units. */
  queuedEffects: number;
  queuedUnits: number;
  queueLimit: number;
  /** How long a stanza's writes may wait for the database before it is withdrawn and answered `wait`. */
  waitLimitMs: number;
}

// A database that comes back is noticed within a second.
const RETRY_MAX_MS = 1_000;
// With nothing to commit (all withdrawn), stanzas that need a write are refused until the database is
// back: ask more often, a connection attempt is cheap.
const PROBE_EVERY_MS = 250;

export class EffectRunner {
  private queue: Unit[] = [];
  private flushing: Promise<void> | null = null;
  private readonly stats: EffectRunnerStats = { batches: 0, writes: 0, statements: 0 };
  /** Units queued or being committed, per lane. */
  private readonly busyLanes = new Map<string, number>();
  private queuedEffects = 0;
  private queuedUnits = 0;
  private degradedSince: Date | null = null;
  /** While degraded with nothing to commit: asks the database whether it is back. */
  private probing: Promise<void> | null = null;
  /** Archive reads under way (each answers its query when done). */
  private readonly reads = new Set<Promise<void>>();

  constructor(
    private readonly sink: WriteSink,
    private readonly sendStanza: (stanza: Element) => void,
    private readonly log: Logger,
    private readonly archive: ArchiveSource,
    readonly queueLimit = Infinity,
    private readonly observer?: EffectObserver,
    readonly waitLimitMs = Infinity,
    private readonly owner?: LaneOwner,
  ) {}

  /**
   * Runs one stanza's effects: at once when nothing needs storing and nothing of its lane waits before
   * them (or always, for `immediate` answers that read nothing pending, such as disco and ping).
   */
  submit(effects: Effect[], lane = "", immediate = false, origin?: Element): void {
    if (effects.length === 0) return;
    const needsCommit = hasWrites(effects);
    if (!needsCommit && (immediate || !this.busyLanes.has(lane))) {
      this.perform(effects);
      return;
    }
    this.queue.push({ effects, lane, origin, queuedAt: Date.now() });
    this.busyLanes.set(lane, (this.busyLanes.get(lane) ?? 0) + 1);
    this.queuedEffects += effects.length;
    this.queuedUnits++;
    this.flushing ??= this.flushLoop();
  }

  /**
   * Runs effects only after every write submitted before them, of any lane, is committed: the timers'
   * DMUC2 acknowledgements say what was applied, and must not leave before it is stored (docs/PROTOCOL.md
   * "Durability"), whichever room's lane stored it.
   */
  submitAfterWrites(effects: Effect[], lane = ""): void {
    if (effects.length === 0) return;
    if (this.queue.length === 0 && !this.flushing) {
      this.submit(effects, lane);
      return;
    }
    this.queue.push({ effects, lane, queuedAt: Date.now() });
    this.busyLanes.set(lane, (this.busyLanes.get(lane) ?? 0) + 1);
    this.queuedEffects += effects.length;
    this.queuedUnits++;
    this.flushing ??= this.flushLoop();
  }

  /**
   * Whether `effects` may wait in the queue: always when they need no write; otherwise not once the
   * database has been away for `waitLimitMs` (they could not be stored in time), nor past the bound.
   */
  accepts(effects: Effect[]): boolean {
    if (!hasWrites(effects)) return true;
    if (this.degradedSince && Date.now() - this.degradedSince.getTime() >= this.waitLimitMs) return false;
    return this.queuedEffects === 0 || this.queuedEffects + effects.length <= this.queueLimit;
  }

  /** Whether units of `lane` are queued or being committed (what it submits next waits behind them). */
  isBusy(lane: string): boolean {
    return this.busyLanes.has(lane);
  }

  get health(): EffectRunnerHealth {
    return {
      degraded: this.degradedSince !== null,
      degradedSince: this.degradedSince,
      queuedEffects: this.queuedEffects,
      queuedUnits: this.queuedUnits,
      queueLimit: this.queueLimit,
      waitLimitMs: this.waitLimitMs,
    };
  }

  /** Resolves when everything submitted so far is committed and sent. */
  async drain(): Promise<void> {
    while (this.flushing || this.reads.size > 0) {
      if (this.flushing) await this.flushing;
      else await Promise.all(this.reads);
    }
  }

  get counters(): Readonly<EffectRunnerStats> {
    return this.stats;
  }

  private async flushLoop(): Promise<void> {
    // Yield once so that stanzas already read from the socket join this batch.
    await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      while (this.queue.length > 0) {
        const batch = await this.commitWithRetry(this.queue.splice(0));
        for (const unit of batch) {
          this.perform(unit.effects);
          this.dequeued(unit);
        }
      }
    } finally {
      this.flushing = null;
      // Every unit was withdrawn while the database is away: nothing will try it again, so ask it
      // whether it is back (until then stanzas that need a write are refused at once).
      if (this.degradedSince) this.probing ??= this.probeLoop();
    }
  }

  private async probeLoop(): Promise<void> {
    try {
      while (this.degradedSince && !this.flushing) {
        await new Promise((resolve) => setTimeout(resolve, PROBE_EVERY_MS).unref());
        if (this.flushing) break;
        try {
          if (this.sink.probe) await this.sink.probe();
          else await this.sink.commit([], []);
          this.recovered();
        } catch (err) {
          if (!isTransient(err)) this.recovered(); // it answers, whatever it says
        }
      }
    } finally {
      this.probing = null;
    }
  }

  private dequeued(unit: Unit): void {
    this.queuedEffects -= unit.effects.length;
    this.queuedUnits--;
    const left = this.busyLanes.get(unit.lane)! - 1;
    if (left > 0) this.busyLanes.set(unit.lane, left);
    else {
      this.busyLanes.delete(unit.lane);
      this.owner?.idle(unit.lane);
    }
  }

  /** Commits `batch`; returns what is left of it to send (withdrawn lanes are gone from it). */
  private async commitWithRetry(batch: Unit[]): Promise<Unit[]> {
    // Nothing that depends on these rows is sent before they are stored: while the database is
    // unreachable, retry rather than drop, until a lane has waited `waitLimitMs`.
    for (let attempt = 0; ; attempt++) {
      const { writes, audits } = collect(batch);
      if (writes.length === 0 && audits.length === 0) return batch;
      try {
        await this.commit(writes, audits);
        this.recovered();
        return batch;
      } catch (err) {
        if (!isTransient(err)) break;
        const delayMs = Math.min(RETRY_MAX_MS, 100 * 2 ** attempt);
        this.degraded(err);
        this.observer?.commitFailed();
        this.log.error("store.commit_failed", { error: err, writes: writes.length, attempt, retryInMs: delayMs });
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        batch = this.withdrawExpired(batch);
      }
    }
    // A write the database refuses (a constraint) is a bug in one stanza's effects: commit the units
    // one by one so that only that unit's rows are lost, and say so.
    for (const unit of batch) {
      const one = collect([unit]);
      if (one.writes.length === 0 && one.audits.length === 0) continue;
      try {
        await this.commit(one.writes, one.audits);
      } catch (err) {
        this.observer?.commitFailed();
        this.log.error("store.write_rejected", { error: err, ops: one.writes.map((w) => w.op) });
      }
    }
    return batch;
  }

  /**
   * Takes out, from `batch` (not stored: its last commit failed) and from the queue, every unit of the
   * lanes whose oldest unit with writes has waited `waitLimitMs` and whose owner can undo them. Their
   * sends that depend on no write go out; the owner undoes the rest and answers their stanzas.
   */
  private withdrawExpired(batch: Unit[]): Unit[] {
    if (!this.owner || !Number.isFinite(this.waitLimitMs)) return batch;
    const owner = this.owner;
    const now = Date.now();
    const asked = new Map<string, boolean>();
    for (const unit of [...batch, ...this.queue]) {
      if (asked.has(unit.lane) || now - unit.queuedAt < this.waitLimitMs || !hasWrites(unit.effects)) continue;
      asked.set(unit.lane, owner.mayWithdraw(unit.lane));
    }
    const expired = new Set([...asked].filter(([, may]) => may).map(([lane]) => lane));
    if (expired.size === 0) return batch;
    const taken = new Map<string, Unit[]>();
    const keep = (units: Unit[]) =>
      units.filter((unit) => {
        if (!expired.has(unit.lane)) return true;
        const list = taken.get(unit.lane) ?? [];
        list.push(unit);
        taken.set(unit.lane, list);
        return false;
      });
    batch = keep(batch);
    this.queue = keep(this.queue);
    for (const [lane, units] of taken) {
      const origins: Element[] = [];
      for (const unit of units) {
        this.queuedEffects -= unit.effects.length;
        this.queuedUnits--;
        if (!hasWrites(unit.effects)) this.perform(unit.effects);
        else if (unit.origin) origins.push(unit.origin);
      }
      this.busyLanes.delete(lane);
      this.log.warn("gateway.writes_withdrawn", { lane, units: units.length, waitLimitMs: this.waitLimitMs });
      owner.withdrawn(lane, origins);
    }
    return batch;
  }

  private degraded(err: unknown): void {
    if (this.degradedSince) return;
    this.degradedSince = new Date();
    this.log.error("gateway.degraded", {
      reason: String((err as Error)?.message ?? err),
      queuedEffects: this.queuedEffects,
      queueLimit: this.queueLimit,
      note: "the database is away: answers that need no write go on, writes wait in the queue, past its limit stanzas that need one get wait/resource-constraint",
    });
  }

  private recovered(): void {
    if (!this.degradedSince) return;
    this.log.warn("gateway.recovered", { degradedMs: Date.now() - this.degradedSince.getTime(), queuedEffects: this.queuedEffects });
    this.degradedSince = null;
  }

  private async commit(writes: StoreWrite[], audits: AuditRecord[]): Promise<void> {
    const t0 = performance.now();
    this.stats.statements += await this.sink.commit(writes, audits);
    this.observer?.committed(writes.length + audits.length, (performance.now() - t0) / 1000);
    this.stats.batches++;
    this.stats.writes += writes.length + audits.length;
  }

  private perform(effects: Effect[]): void {
    for (const effect of effects) {
      if (effect.kind === "send") {
        this.sendStanza(effect.stanza);
        this.observer?.sentStanza(effect.stanza, effect.fanout !== undefined);
      } else if (effect.kind === "log") this.log[effect.level](effect.event, effect.fields);
      else if (effect.kind === "archive-read") this.readArchive(effect);
    }
    this.observer?.performed(effects);
  }

  /**
   * Reads run after every write submitted before them is committed (the unit waited in the queue
   * behind them), so an archive query sees the messages sent before it. What follows from the read
   * is submitted like any stanza's effects: its writes are committed before its sends.
   */
  private readArchive(effect: Extract<Effect, { kind: "archive-read" }>): void {
    const reading = this.archive
      .read(effect.query)
      .catch((err: unknown): ArchiveReadResult => {
        this.log.error("archive.read_failed", { error: err, room: effect.query.roomJid });
        return { ok: false, reason: "failed" };
      })
      // In the room's lane: what follows from the read keeps its order with the room's other stanzas.
      .then((result) => this.submit(effect.then(result), effect.query.roomJid))
      .finally(() => this.reads.delete(reading));
    this.reads.add(reading);
  }
}

function hasWrites(effects: Effect[]): boolean {
  return effects.some((e) => e.kind === "store" || e.kind === "audit");
}

function collect(units: Unit[]): { writes: StoreWrite[]; audits: AuditRecord[] } {
  const writes: StoreWrite[] = [];
  const audits: AuditRecord[] = [];
  for (const unit of units) {
    for (const effect of unit.effects) {
      if (effect.kind === "store") writes.push(effect.write);
      else if (effect.kind === "audit") audits.push(effect.record);
    }
  }
  return { writes, audits };
}

/** Connection-level failures (SQLSTATE classes 08, 53, 57 and socket errors) are worth retrying. */
function isTransient(err: unknown): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code !== "string") return /connect|terminat|timeout|closed/i.test(String(message));
  return /^(08|53|57)/.test(code) || /^E[A-Z]+$/.test(code);
}
