// `dmuc-gateway audit verify` and `audit head`: recompute each room's hash chain (src/core/audit-chain.ts)
// and report, per room, the first row that was changed, removed or inserted. Rows are streamed in
// chain order through one cursor: the whole table is never held in memory.
import type { DataSource } from "typeorm";
import { GENESIS_HASH, rowHash, type ChainStart } from "../core/audit-chain.js";
import { streamRows } from "./cursor.js";

export interface ChainProblem {
  room: string;
  problem: "changed" | "removed" | "inserted";
  message: string;
}

export interface VerifyReport {
  rooms: number;
  rows: number;
  /** Rows written before this version chained them (no seq, no hash): not covered. */
  unchained: number;
  problems: ChainProblem[];
}

/** A head recorded elsewhere (`audit head` output): the chain must still hold that row unchanged. */
export interface Anchor {
  seq: number;
  hash: string;
}

interface StoredRow {
  id: string;
  room_jid: string | null;
  at: Date;
  kind: string;
  actor_jid: string | null;
  subject_jid: string | null;
  details: Record<string, unknown>;
  seq: string | null;
  prev_hash: string | null;
  hash: string | null;
}

/** The walk through one room's rows, in seq order (rows without seq last). */
class RoomWalk {
  rows = 0;
  unchained = 0;
  problem: ChainProblem | undefined;
  private last: { seq: number; hash: string } | undefined;
  private first: ChainStart | undefined;
  /** The chain start the latest retention.purged row records. */
  private purgedTo: ChainStart | "this-row" | undefined;
  private purgeSeq = 0;
  private anchorSeen = false;

  constructor(
    readonly room: string,
    private readonly firstChainedId: bigint | null,
    private readonly anchor: Anchor | undefined,
  ) {}

  private fail(problem: ChainProblem["problem"], message: string): void {
    this.problem ??= { room: this.room, problem, message };
  }

  add(row: StoredRow): void {
    this.rows++;
    if (this.problem) return;
    if (row.seq === null || row.hash === null || row.prev_hash === null) {
      const beforeChain = row.seq === null && row.hash === null && (this.firstChainedId === null || BigInt(row.id) < this.firstChainedId);
      if (beforeChain) this.unchained++;
      else this.fail("inserted", `row id ${row.id} (${row.kind}) has no place in the chain: inserted`);
      return;
    }
    const seq = Number(row.seq);
    const computed = rowHash({
      roomJid: this.room,
      seq,
      at: row.at,
      kind: row.kind,
      actorJid: row.actor_jid,
      subjectJid: row.subject_jid,
      details: row.details,
      prevHash: row.prev_hash,
    });
    if (!this.last) {
      this.first = { seq, prevHash: row.prev_hash };
      if (seq === 1 && row.prev_hash !== GENESIS_HASH) this.fail("changed", `row seq 1 (id ${row.id}) does not start the chain: changed`);
    } else if (seq !== this.last.seq + 1) {
      this.fail("removed", `row seq ${this.last.seq + 1} is missing (the chain goes from seq ${this.last.seq} to ${seq}): removed`);
    } else if (row.prev_hash !== this.last.hash) {
      this.fail("changed", `row seq ${this.last.seq} no longer has the hash row seq ${seq} (id ${row.id}) recorded for it: changed or replaced`);
    }
    if (computed !== row.hash) this.fail("changed", `row seq ${seq} (id ${row.id}, ${row.kind}) does not match its hash: changed`);
    if (this.anchor && seq === this.anchor.seq) {
      this.anchorSeen = true;
      if (row.hash !== this.anchor.hash) this.fail("changed", `row seq ${seq} (id ${row.id}) is not the row anchored with hash ${this.anchor.hash}: chain rewritten`);
    }
    if (row.kind === "retention.purged") {
      this.purgedTo = (row.details as { chainStart?: ChainStart | "this-row" }).chainStart;
      this.purgeSeq = seq;
    }
    this.last = { seq, hash: row.hash };
  }

  finish(): void {
    if (this.problem || !this.first || !this.last) return;
    const start = this.purgedTo === "this-row" ? { seq: this.purgeSeq, prevHash: "" } : this.purgedTo;
    if (this.first.seq !== 1) {
      if (!start) this.fail("removed", `rows seq 1 to ${this.first.seq - 1} are missing and no retention purge records it: removed`);
      else if (start.seq !== this.first.seq || (this.purgedTo !== "this-row" && start.prevHash !== this.first.prevHash)) {
        this.fail(start.seq < this.first.seq ? "removed" : "inserted", `the chain starts at seq ${this.first.seq}, the last retention purge left it starting at seq ${start.seq}`);
      }
    }
    if (this.anchor && !this.anchorSeen) {
      if (this.anchor.seq > this.last.seq) this.fail("removed", `rows after seq ${this.last.seq} are missing: the anchored head is seq ${this.anchor.seq}: removed`);
      else if (this.anchor.seq >= this.first.seq) this.fail("removed", `the anchored row seq ${this.anchor.seq} is missing: removed`);
    }
  }
}

export async function verifyChains(dataSource: DataSource, room: string | undefined, anchors: ReadonlyMap<string, Anchor> = new Map()): Promise<VerifyReport> {
  const firstChained: { id: string | null }[] = await dataSource.query(`SELECT min(id) AS id FROM audit_events WHERE seq IS NOT NULL`);
  const firstChainedId = firstChained[0]?.id ? BigInt(firstChained[0].id) : null;
  const report: VerifyReport = { rooms: 0, rows: 0, unchained: 0, problems: [] };
  let walk: RoomWalk | undefined;
  const walked = new Set<string>();
  const done = (w: RoomWalk | undefined) => {
    if (!w) return;
    walked.add(w.room);
    w.finish();
    report.rooms++;
    report.rows += w.rows;
    report.unchained += w.unchained;
    if (w.problem) report.problems.push(w.problem);
  };
  await streamRows<StoredRow>(
    dataSource,
    `SELECT id, room_jid, at, kind, actor_jid, subject_jid, details, seq, prev_hash, hash FROM audit_events
     ${room ? "WHERE room_jid = $1" : ""} ORDER BY room_jid, seq`,
    room ? [room] : [],
    (row) => {
      const key = row.room_jid ?? "";
      if (walk?.room !== key) {
        done(walk);
        walk = new RoomWalk(key, firstChainedId, anchors.get(key));
      }
      walk.add(row);
    },
  );
  done(walk);
  // An anchored room with no rows left at all was removed entirely.
  for (const [anchored, anchor] of anchors) {
    if (room && anchored !== room) continue;
    if (!walked.has(anchored)) report.problems.push({ room: anchored, problem: "removed", message: `every row up to the anchored seq ${anchor.seq} is missing: removed` });
  }
  return report;
}

export interface ChainHead {
  room: string;
  seq: number;
  hash: string;
  at: Date;
}

/** The last row of each room's chain: what to copy to an external log (docs/AUDIT.md, Anchoring). */
export async function chainHeads(dataSource: DataSource, room: string | undefined): Promise<ChainHead[]> {
  // The rooms by a skip scan of the (room_jid, seq) index, then each one's last row: an index probe
  // per room, not a pass over the table.
  const rooms = room
    ? `SELECT $1::text AS jid`
    : `WITH RECURSIVE r(jid) AS (
         (SELECT room_jid FROM audit_events WHERE room_jid IS NOT NULL ORDER BY room_jid LIMIT 1)
         UNION ALL
         SELECT (SELECT a.room_jid FROM audit_events a WHERE a.room_jid > r.jid ORDER BY a.room_jid LIMIT 1) FROM r WHERE r.jid IS NOT NULL
       ) SELECT jid FROM r WHERE jid IS NOT NULL`;
  const rows: { room_jid: string; seq: string; hash: string; at: Date }[] = await dataSource.query(
    `SELECT k.jid AS room_jid, h.seq, h.hash, h.at FROM (${rooms}) k
     JOIN LATERAL (SELECT seq, hash, at FROM audit_events a WHERE a.room_jid = k.jid AND a.seq IS NOT NULL ORDER BY a.seq DESC LIMIT 1) h ON true
     ORDER BY k.jid`,
    room ? [room] : [],
  );
  return rows.map((r) => ({ room: r.room_jid, seq: Number(r.seq), hash: r.hash, at: r.at }));
}

/** `audit head` lines: ROOM SEQ HASH TIME. */
export function formatHeads(heads: ChainHead[]): string {
  return heads.map((h) => `${h.room} ${h.seq} ${h.hash} ${h.at.toISOString()}\n`).join("");
}

/** Reads `audit head` output back as anchors; throws on a line that is not one. */
export function parseAnchors(text: string): Map<string, Anchor> {
  const anchors = new Map<string, Anchor>();
  for (const [i, line] of text.split("\n").entries()) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const m = /^(\S+) (\d+) ([0-9a-f]{64})(?: \S+)?$/.exec(line.trim());
    if (!m) throw new Error(`anchor line ${i + 1} is not 'ROOM SEQ HASH [TIME]': ${line}`);
    anchors.set(m[1]!, { seq: Number(m[2]), hash: m[3]! });
  }
  return anchors;
}
