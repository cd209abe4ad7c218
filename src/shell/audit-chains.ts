// Chains audit records as they are stored: each row gets its room's next sequence number, the
// previous row's hash and its own (src/core/audit-chain.ts). The heads of the chains are kept in
// memory; a room not seen since start has its head read in the batch's transaction (one query for
// all such rooms), so the group commit stays one round trip per batch for rooms already seen.
// Batches are applied one at a time (exclusive), and a batch that fails leaves no trace in the
// heads: its rooms are read again next time.
import type { AuditRecord } from "../core/effects.js";
import { GENESIS_HASH, rowHash, type ChainRow } from "../core/audit-chain.js";

/** Runs a statement: a transaction's EntityManager, or the DataSource for an autocommitted one. */
export interface Queryable {
  /** Resolves to the rows as the driver returns them, as EntityManager.query does. */
  query(sql: string, params?: unknown[]): Promise<any>;
}

interface Head {
  seq: number;
  hash: string;
}

/** The chained rows of one transaction, and the heads they move to. */
export class ChainAppend {
  readonly heads = new Map<string, Head>();

  constructor(private readonly chains: AuditChains) {}

  keyOf(record: AuditRecord): string {
    return this.chains.keyOf(record);
  }

  /** Whether some of these chains' heads must be read from the database first. */
  needsLoad(chainKeys: readonly string[]): boolean {
    return chainKeys.some((k) => !this.heads.has(k) && !this.chains.known(k));
  }

  /** Reads the heads of chains not seen yet (one query), before anything of theirs is deleted. */
  async load(manager: Queryable, chainKeys: readonly string[]): Promise<number> {
    const unknown = [...new Set(chainKeys)].filter((k) => !this.heads.has(k) && !this.chains.known(k));
    if (unknown.length === 0) return 0;
    const found: { room_jid: string; seq: string | null; hash: string | null }[] = await manager.query(
      `SELECT k.room_jid, h.seq, h.hash FROM unnest($1::text[]) AS k(room_jid)
       LEFT JOIN LATERAL (SELECT seq, hash FROM audit_events a WHERE a.room_jid = k.room_jid AND a.seq IS NOT NULL ORDER BY a.seq DESC LIMIT 1) h ON true`,
      [unknown],
    );
    for (const row of found) this.heads.set(row.room_jid, row.seq === null ? { seq: 0, hash: GENESIS_HASH } : { seq: Number(row.seq), hash: row.hash ?? GENESIS_HASH });
    return 1;
  }

  /** Inserts `audits` as the next rows of their rooms' chains; returns the statements used. */
  async append(manager: Queryable, audits: readonly AuditRecord[]): Promise<number> {
    const statements = await this.load(manager, audits.map((a) => this.chains.keyOf(a)));
    const insert = this.insert(audits);
    await manager.query(insert.sql, insert.params);
    return statements + 1;
  }

  /**
   * The INSERT of `audits` as the next rows of their rooms' chains (heads loaded before), to run
   * alone or as a data-modifying WITH of another statement of the transaction.
   */
  insert(audits: readonly AuditRecord[]): { sql: string; params: unknown[] } {
    const at = this.chains.clock();
    const rows: (ChainRow & { hash: string; json: string })[] = audits.map((record) => {
      const roomJid = this.chains.keyOf(record);
      const json = JSON.stringify(record.details);
      const head = this.heads.get(roomJid) ?? this.chains.head(roomJid)!;
      const row: ChainRow = {
        roomJid,
        seq: head.seq + 1,
        at,
        kind: record.kind,
        actorJid: record.actorJid,
        subjectJid: record.subjectJid ?? null,
        details: record.details,
        prevHash: head.hash,
      };
      const hash = rowHash(row);
      this.heads.set(roomJid, { seq: row.seq, hash });
      return { ...row, hash, json };
    });
    return {
      sql: `INSERT INTO audit_events (room_jid, at, actor_jid, subject_jid, kind, details, seq, prev_hash, hash)
       SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::bigint[], $8::text[], $9::text[])`,
      params: [
        rows.map((r) => r.roomJid),
        rows.map((r) => r.at.toISOString()),
        rows.map((r) => r.actorJid),
        rows.map((r) => r.subjectJid),
        rows.map((r) => r.kind),
        rows.map((r) => r.json),
        rows.map((r) => String(r.seq)),
        rows.map((r) => r.prevHash),
        rows.map((r) => r.hash),
      ],
    };
  }
}

export class AuditChains {
  private readonly heads = new Map<string, Head>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly serviceJid: string,
    readonly clock: () => Date,
  ) {}

  /** The chain a record belongs to: its room, or the service's domain. */
  keyOf(record: AuditRecord): string {
    return record.roomJid ?? this.serviceJid;
  }

  known(key: string): boolean {
    return this.heads.has(key);
  }

  head(key: string): Head | undefined {
    return this.heads.get(key);
  }

  /** Runs `work` after every batch before it: chains grow one batch at a time. */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  begin(): ChainAppend {
    return new ChainAppend(this);
  }

  /** The heads move when the transaction commits; when it fails they are forgotten and read again. */
  async settle<T>(append: ChainAppend, transaction: Promise<T>): Promise<T> {
    try {
      const result = await transaction;
      for (const [key, head] of append.heads) this.heads.set(key, head);
      return result;
    } catch (err) {
      for (const key of append.heads.keys()) this.heads.delete(key);
      throw err;
    }
  }
}
