// Benchmark 4 (issue 6): how fast history messages are stored, and how many transactions and
// statements each one costs, with the gateway's own write path (EffectRunner's group commit on
// RoomStore) against a real PostgreSQL, compared in the same run with the naive ways of storing them:
// one INSERT per message awaited before the message is "sent", and TypeORM's repository.save() per row.
//
// Closed loop: `inFlight` senders each submit one groupchat message (a history.append write followed by
// the broadcast that depends on it), wait until its broadcast is released (for the naive peers: until
// its INSERT/save resolved), then send the next. Throughput = messages / wall time; latency = submit to
// release. Transactions and statements are counted on the client, at TypeORM's query logger: every
// round trip to the server is one logged query (START TRANSACTION and COMMIT included).
import { randomBytes } from "node:crypto";
import type { DataSource, QueryRunner } from "typeorm";
import xml, { type Element } from "@xmpp/xml";
import { createDataSource } from "../ormconfig.js";
import { HistoryMessage } from "../entities/index.js";
import { EffectRunner } from "../src/shell/effect-runner.js";
import { RoomStore, historyInsert, type HistoryWrite } from "../src/shell/room-store.js";
import { ArchiveReader } from "../src/shell/archive-reader.js";
import { createLogger } from "../src/log.js";
import { DEFAULT_ROOM_CONFIG, type HistoryEntry } from "../src/core/room/types.js";
import type { Effect } from "../src/core/effects.js";
import type { StoreWrite } from "../src/core/store-writes.js";
import { verifyChains } from "../src/commands/audit-verify.js";
import { startTestDatabase } from "../test/support/postgres.js";
import type { BenchOptions, Cell, Report } from "./lib/report.js";

export const name = "persistence";

const ROOMS = 10;
const NS_SID = "urn:xmpp:sid:0";
const BODY = "Phaedrus, we're all having a truly rotten time. ".repeat(2).trim(); // ~100 characters

const GROUP = "group commit (EffectRunner + RoomStore)";
const GROUP_AUDITED = "group commit, an audit row per message";
const FLOOR = "the batch's statement alone";
const INSERT = "INSERT per message, awaited";
const SAVE = "TypeORM save() per message";
type Mode = typeof GROUP | typeof GROUP_AUDITED | typeof FLOOR | typeof INSERT | typeof SAVE;
const MODES: Mode[] = [GROUP, GROUP_AUDITED, FLOOR, INSERT, SAVE];

interface QueryCounts {
  roundTrips: number;
  statements: number;
  transactions: number;
}

/** Counts every query TypeORM sends (its logger sees each one, whatever `logging` says). */
function countQueries(dataSource: DataSource): QueryCounts {
  const counts: QueryCounts = { roundTrips: 0, statements: 0, transactions: 0 };
  const inner = dataSource.logger;
  const counting = Object.create(inner) as typeof inner;
  counting.logQuery = (query: string, parameters?: unknown[], runner?: QueryRunner) => {
    counts.roundTrips++;
    const q = query.trim().toUpperCase();
    if (q === "START TRANSACTION" || q === "BEGIN") counts.transactions++;
    else if (q === "COMMIT" || q === "ROLLBACK") return;
    else {
      counts.statements++;
      if (!runner?.isTransactionActive) counts.transactions++; // autocommit: a transaction of its own
    }
    void parameters;
  };
  (dataSource as { logger: typeof inner }).logger = counting;
  return counts;
}

interface Run {
  mode: Mode;
  inFlight: number;
  messages: number;
  seconds: number;
  latencies: number[];
  queries: QueryCounts;
  batches?: number;
  /** Group commit only: time spent inside RoomStore.commit. */
  commitMs?: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

export async function run(options: BenchOptions): Promise<Report> {
  const perConfig = options.quick ? 600 : 5_000;
  const timeCapMs = options.quick ? 5_000 : 15_000;
  const levels = [1, 10, 100];

  const db = await startTestDatabase();
  const dataSource = createDataSource(db.url);
  const notes: string[] = [];
  const rows: Cell[][] = [];
  try {
    await dataSource.initialize();
    await dataSource.runMigrations({ transaction: "each" });
    const settings = (await dataSource.query(
      `SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync,
              current_setting('synchronous_commit') AS sync, current_setting('max_connections') AS maxconn`,
    )) as { version: string; fsync: string; sync: string }[];
    const s = settings[0]!;
    const log = createLogger({ level: "error" });
    const store = new RoomStore(dataSource, "muc.bench.test");
    const roomJids = Array.from({ length: ROOMS }, (_, i) => `bench${i}@muc.bench.test`);
    await store.commit(
      roomJids.map((roomJid): StoreWrite => ({ op: "room.save", roomJid, config: DEFAULT_ROOM_CONFIG, subject: null, locked: false })),
      [],
    );
    const roomIds = new Map<string, string>(
      ((await dataSource.query(`SELECT id, jid FROM rooms`)) as { id: string; jid: string }[]).map((r) => [r.jid, r.id]),
    );
    const counts = countQueries(dataSource);
    const repository = dataSource.getRepository(HistoryMessage);
    const runTag = randomBytes(4).toString("hex");
    let seq = 0;

    const makeEntry = (): { roomJid: string; entry: HistoryEntry; stanza: Element } => {
      const n = seq++;
      const roomJid = roomJids[n % ROOMS]!;
      const stanzaId = `${runTag}-${n}-${randomBytes(8).toString("base64url")}`;
      const nick = `user${n % 50}`;
      const stanza = xml(
        "message",
        { from: `${roomJid}/${nick}`, type: "groupchat", id: stanzaId },
        xml("body", {}, BODY),
        xml("stanza-id", { xmlns: NS_SID, by: roomJid, id: stanzaId }),
        xml("occupant-id", { xmlns: "urn:xmpp:occupant-id:0", id: `occ-${n % 50}` }),
      );
      const entry: HistoryEntry = { stanzaId, nick, occupantId: `occ-${n % 50}`, senderJid: `${nick}@users.bench.test/r`, at: new Date(), stanza, chars: 0 };
      return { roomJid, entry, stanza };
    };

    /** Runs `inFlight` closed-loop senders until `perConfig` messages or the time cap. */
    const drive = async (inFlight: number, storeOne: () => Promise<void>): Promise<{ messages: number; seconds: number; latencies: number[] }> => {
      let started = 0;
      const latencies: number[] = [];
      const t0 = performance.now();
      const deadline = t0 + timeCapMs;
      const sender = async (): Promise<void> => {
        while (started < perConfig && performance.now() < deadline) {
          started++;
          const t = performance.now();
          await storeOne();
          latencies.push(performance.now() - t);
        }
      };
      await Promise.all(Array.from({ length: inFlight }, sender));
      return { messages: latencies.length, seconds: (performance.now() - t0) / 1000, latencies };
    };

    const runs: Run[] = [];
    for (const inFlight of levels) {
      for (const mode of MODES) {
        options.log(`${mode}, ${inFlight} in flight`);
        const before = { ...counts };
        let result: { messages: number; seconds: number; latencies: number[] };
        let batches: number | undefined;
        let commitMs = 0;
        if (mode === GROUP || mode === GROUP_AUDITED) {
          const released = new Map<string, () => void>();
          const timed = {
            commit: async (writes: Parameters<RoomStore["commit"]>[0], audits: Parameters<RoomStore["commit"]>[1]): Promise<number> => {
              const t = performance.now();
              try {
                return await store.commit(writes, audits);
              } finally {
                commitMs += performance.now() - t;
              }
            },
          };
          const runner = new EffectRunner(timed, (stanza) => released.get(stanza.attrs.id as string)?.(), log, new ArchiveReader(dataSource, log));
          result = await drive(inFlight, () => {
            const { roomJid, entry, stanza } = makeEntry();
            return new Promise<void>((resolve) => {
              released.set(entry.stanzaId, () => {
                released.delete(entry.stanzaId);
                resolve();
              });
              const effects: Effect[] = [{ kind: "store", write: { op: "history.append", roomJid, entry, archived: true } }, { kind: "send", stanza }];
              // As the gateway with DMUC_AUDIT_TRAFFIC on: the message's audit row, chained in its room.
              if (mode === GROUP_AUDITED) effects.splice(1, 0, { kind: "audit", record: { kind: "message", roomJid, actorJid: entry.senderJid, subjectJid: null, details: { stanzaId: entry.stanzaId, nick: entry.nick } } });
              runner.submit(effects);
            });
          });
          await runner.drain();
          batches = runner.counters.batches;
          const c = runner.counters;
          const expected = mode === GROUP_AUDITED ? 2 * result.messages : result.messages;
          if (c.writes !== expected) notes.push(`group commit at ${inFlight} in flight: ${c.writes} writes for ${result.messages} messages`);
        } else if (mode === FLOOR) {
          // The lower bound of the group commit: the same statement RoomStore sends for a batch of
          // `inFlight` messages, sent back to back on the same DataSource, with no runner and no senders.
          const t0 = performance.now();
          const latencies: number[] = [];
          while (latencies.length < perConfig && performance.now() < t0 + timeCapMs) {
            const batch: HistoryWrite[] = Array.from({ length: inFlight }, () => {
              const { roomJid, entry } = makeEntry();
              return { op: "history.append", roomJid, entry, archived: true };
            });
            const t = performance.now();
            const { sql, params } = historyInsert(batch);
            await dataSource.query(sql, params);
            for (const _ of batch) latencies.push(performance.now() - t);
          }
          result = { messages: latencies.length, seconds: (performance.now() - t0) / 1000, latencies };
        } else if (mode === INSERT) {
          result = await drive(inFlight, async () => {
            const { roomJid, entry } = makeEntry();
            await dataSource.query(
              `INSERT INTO history_messages (room_id, room_jid, stanza_id, origin_id, occupant_id, nick, sender_jid, body, stanza, sent_at)
               VALUES ((SELECT id FROM rooms WHERE jid = $1), $1, $2, $3, $4, $5, $6, $7, $8, $9)`,
              [roomJid, entry.stanzaId, null, entry.occupantId, entry.nick, entry.senderJid, BODY, entry.stanza.toString(), entry.at.toISOString()],
            );
          });
        } else {
          result = await drive(inFlight, async () => {
            const { roomJid, entry } = makeEntry();
            const row = repository.create({
              roomId: roomIds.get(roomJid)!,
              roomJid,
              stanzaId: entry.stanzaId,
              originId: null,
              occupantId: entry.occupantId,
              nick: entry.nick,
              senderJid: entry.senderJid,
              body: BODY,
              stanza: entry.stanza.toString(),
              sentAt: entry.at,
            });
            await repository.save(row);
          });
        }
        const queries: QueryCounts = {
          roundTrips: counts.roundTrips - before.roundTrips,
          statements: counts.statements - before.statements,
          transactions: counts.transactions - before.transactions,
        };
        runs.push({ mode, inFlight, ...result, latencies: result.latencies.sort((a, b) => a - b), queries, ...(batches !== undefined ? { batches, commitMs } : {}) });
      }
    }

    const stored = Number(((await dataSource.query(`SELECT count(*) AS n FROM history_messages`)) as { n: string }[])[0]!.n);
    const sent = runs.reduce((n, r) => n + r.messages, 0);
    if (stored !== sent) notes.push(`CHECK FAILED: ${stored} rows stored for ${sent} messages`);
    const audited = runs.filter((r) => r.mode === GROUP_AUDITED).reduce((n, r) => n + r.messages, 0);
    const auditRows = Number(((await dataSource.query(`SELECT count(*) AS n FROM audit_events`)) as { n: string }[])[0]!.n);
    const verified = await verifyChains(dataSource, undefined);
    if (auditRows !== audited || verified.problems.length > 0) notes.push(`CHECK FAILED: ${auditRows} audit rows for ${audited} audited messages, chain problems: ${JSON.stringify(verified.problems)}`);

    for (const r of runs) {
      const rate = r.messages / r.seconds;
      const rateOf = (m: Mode) => {
        const x = runs.find((y) => y.inFlight === r.inFlight && y.mode === m)!;
        return x.messages / x.seconds;
      };
      rows.push([
        r.mode,
        String(r.inFlight),
        String(r.messages),
        Math.round(rate),
        `${round(rate / rateOf(INSERT))}x`,
        `${round(rate / rateOf(FLOOR))}x`,
        percentile(r.latencies, 50).toFixed(2),
        percentile(r.latencies, 99).toFixed(2),
        (r.queries.transactions / r.messages).toFixed(3),
        (r.queries.statements / r.messages).toFixed(3),
        (r.queries.roundTrips / r.messages).toFixed(3),
        (r.messages / Math.max(1, r.queries.transactions)).toFixed(1),
        r.commitMs === undefined ? "-" : `${Math.round((100 * r.commitMs) / (r.seconds * 1000))}%`,
      ]);
    }
    notes.push(
      `PostgreSQL ${s.version}, fsync=${s.fsync}, synchronous_commit=${s.sync} (${process.env.DATABASE_URL ? "the server of DATABASE_URL" : "the embedded test server"}); ` +
        `TypeORM pool: 10 connections; ${ROOMS} rooms; message stanza ~${makeEntry().stanza.toString().length} bytes.`,
      `Closed loop: each of the "in flight" senders waits for its message's broadcast (group commit) or its INSERT/save() (naive) before the next; ${perConfig} messages per row, capped at ${timeCapMs / 1000} s.`,
      "Counted at TypeORM's query logger: a statement is any query but START TRANSACTION/COMMIT; a statement outside a transaction is a transaction of its own; round trips include START TRANSACTION and COMMIT.",
      '"in commit": share of the wall time the group commit spent inside RoomStore.commit (one transaction at a time); the rest is Node building rows, running effects and the senders.',
      `Stored rows checked: ${stored} in history_messages for ${sent} messages; ${auditRows} audit rows for ${audited} audited messages, their ${verified.rooms} chains verified (${verified.problems.length} problems).`,
      `"${FLOOR}": RoomStore's INSERT for a batch of "in flight" messages, sent back to back through the same DataSource with nothing else: the database's own rate for these rows, measured right after the group commit rows (on a shared machine the rate moves from one minute to the next: compare within a run, and across runs).`,
    );
    const columns = ["mode", "in flight", "messages", "msgs/s", "vs INSERT/msg", "vs statement alone", "p50 ms", "p99 ms", "tx/msg", "stmts/msg", "round trips/msg", "msgs/tx", "in commit"];
    return { tables: [{ title: "History messages stored: group commit vs one write per message", columns, rows }], notes };
  } finally {
    if (dataSource.isInitialized) await dataSource.destroy();
    await db.stop();
  }
}
