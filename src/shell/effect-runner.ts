// Executes the engine's effects with the invariant of issue 3: a stanza that depends on a write is
// sent only after that write is committed. Writes that arrive together are committed in one
// transaction (group commit), and fan-out never waits on the database per recipient.
import type { Element } from "@xmpp/xml";
import type { AuditRecord, Effect } from "../core/effects.js";
import type { StoreWrite } from "../core/store-writes.js";
import type { ArchiveQuery, ArchiveReadResult } from "../core/archive/query.js";
import type { Logger } from "../log.js";

export interface WriteSink {
  commit(writes: readonly StoreWrite[], audits: readonly AuditRecord[]): Promise<number>;
}

export interface ArchiveSource {
  read(query: ArchiveQuery): Promise<ArchiveReadResult>;
}

export interface EffectRunnerStats {
  batches: number;
  writes: number;
  statements: number;
}

interface Unit {
  effects: Effect[];
}

const RETRY_MAX_MS = 5_000;

export class EffectRunner {
  private queue: Unit[] = [];
  private flushing: Promise<void> | null = null;
  private readonly stats: EffectRunnerStats = { batches: 0, writes: 0, statements: 0 };
  /** Archive reads under way (each answers its query when done). */
  private readonly reads = new Set<Promise<void>>();

  constructor(
    private readonly sink: WriteSink,
    private readonly sendStanza: (stanza: Element) => void,
    private readonly log: Logger,
    private readonly archive: ArchiveSource,
  ) {}

  /** Runs one stanza's effects: at once when nothing needs storing and nothing waits before them. */
  submit(effects: Effect[]): void {
    if (effects.length === 0) return;
    const needsCommit = effects.some((e) => e.kind === "store" || e.kind === "audit");
    if (!needsCommit && this.queue.length === 0 && !this.flushing) {
      this.perform(effects);
      return;
    }
    this.queue.push({ effects });
    this.flushing ??= this.flushLoop();
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
        const batch = this.queue;
        this.queue = [];
        await this.commitWithRetry(batch);
        for (const unit of batch) this.perform(unit.effects);
      }
    } finally {
      this.flushing = null;
    }
  }

  private async commitWithRetry(batch: Unit[]): Promise<void> {
    const { writes, audits } = collect(batch);
    if (writes.length === 0 && audits.length === 0) return;
    // Nothing that depends on these rows is sent before they are stored: while the database is
    // unreachable, retry rather than drop.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.commit(writes, audits);
        return;
      } catch (err) {
        if (!isTransient(err)) break;
        const delayMs = Math.min(RETRY_MAX_MS, 100 * 2 ** attempt);
        this.log.error("store.commit_failed", { error: err, writes: writes.length, attempt, retryInMs: delayMs });
        await new Promise((resolve) => setTimeout(resolve, delayMs));
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
        this.log.error("store.write_rejected", { error: err, ops: one.writes.map((w) => w.op) });
      }
    }
  }

  private async commit(writes: StoreWrite[], audits: AuditRecord[]): Promise<void> {
    this.stats.statements += await this.sink.commit(writes, audits);
    this.stats.batches++;
    this.stats.writes += writes.length + audits.length;
  }

  private perform(effects: Effect[]): void {
    for (const effect of effects) {
      if (effect.kind === "send") this.sendStanza(effect.stanza);
      else if (effect.kind === "log") this.log[effect.level](effect.event, effect.fields);
      else if (effect.kind === "archive-read") this.readArchive(effect);
    }
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
      .then((result) => this.submit(effect.then(result)))
      .finally(() => this.reads.delete(reading));
    this.reads.add(reading);
  }
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
