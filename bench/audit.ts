// Benchmark (issue 12): what the audit trail costs and how fast it exports.
//
// 1. The group-commit path with traffic auditing on and off, in the same run: the pure service
//    (MucService with every plugin) handles groupchat messages and a churn of entries and exits, the
//    EffectRunner commits their rows (history, occupants, audit rows hash-chained per room) on a
//    real PostgreSQL and releases the broadcasts. Closed loop: each sender waits for its message's
//    echo before sending the next. Rounds alternate on/off so that both see the same machine.
// 2. `dmuc-gateway audit` export of a large table (1,000,000 rows; 100,000 with --quick) through the
//    cursor, to a sink, in NDJSON and CSV: rows/s and the process's memory while it runs.
// 3. `audit verify` over the chains written in part 1.
import { Writable } from "node:stream";
import xml, { type Element } from "@xmpp/xml";
import type { DataSource } from "typeorm";
import { createDataSource } from "../ormconfig.js";
import { createPlugins } from "../plugins/index.js";
import { emptyServiceState, MucService, type ServiceState } from "../src/core/service.js";
import { EffectRunner } from "../src/shell/effect-runner.js";
import { ArchiveReader } from "../src/shell/archive-reader.js";
import { RoomStore } from "../src/shell/room-store.js";
import { createLogger } from "../src/log.js";
import { exportAudit } from "../src/commands/audit-export.js";
import { verifyChains } from "../src/commands/audit-verify.js";
import { Pseudonymiser } from "../src/commands/export-format.js";
import { startTestDatabase } from "../test/support/postgres.js";
import { fmt, type BenchOptions, type Cell, type Report } from "./lib/report.js";

export const name = "audit";

const DOMAIN = "muc.bench.test";
const ROOMS = 10;
const OCCUPANTS = 6;
/** One sender per (room, occupant) pair but each room's owner. */
const IN_FLIGHT = ROOMS * (OCCUPANTS - 1);
/** One sender in CHURN_EVERY leaves and enters again instead of talking. */
const CHURN_EVERY = 10;

interface Gateway {
  service: MucService;
  state: ServiceState;
  runner: EffectRunner;
  /** The last stanza of each handled stanza's effects -> its sender's wake-up. */
  released: Map<Element, () => void>;
  ids: number;
  /** Time spent inside RoomStore.commit. */
  commitMs: number;
}

function gateway(dataSource: DataSource, auditTraffic: boolean): Gateway {
  const log = createLogger({ level: "error" });
  const released = new Map<Element, () => void>();
  const service = new MucService(
    { domain: DOMAIN, admins: new Set(), name: "bench", auditTraffic },
    createPlugins({ maxHistoryMessages: 20, maxBodyChars: 10_000, ratePerSecond: 1e9, burst: 1e9 }),
  );
  const store = new RoomStore(dataSource, DOMAIN);
  const gw: Gateway = { service, state: emptyServiceState(), released, ids: 0, commitMs: 0, runner: undefined as unknown as EffectRunner };
  const timed = {
    commit: async (...args: Parameters<RoomStore["commit"]>) => {
      const t = performance.now();
      try {
        return await store.commit(...args);
      } finally {
        gw.commitMs += performance.now() - t;
      }
    },
  };
  gw.runner = new EffectRunner(timed, (stanza) => released.get(stanza)?.(), log, new ArchiveReader(dataSource, log));
  return gw;
}

/** Handles one stanza and submits its effects; resolves when the last of its stanzas is sent (after its commit). */
function handle(gw: Gateway, stanza: Element): Promise<void> {
  return new Promise((resolve) => {
    const outcome = gw.service.handle(gw.state, stanza, { now: new Date(), newId: () => `${auditTag(gw)}-${++gw.ids}` });
    gw.state = outcome.state;
    const last = outcome.effects.filter((e) => e.kind === "send").at(-1);
    if (!last || last.kind !== "send") throw new Error(`nothing sent for ${stanza.toString()}`);
    gw.released.set(last.stanza, () => {
      gw.released.delete(last.stanza);
      resolve();
    });
    gw.runner.submit(outcome.effects);
  });
}

const auditTag = (gw: Gateway) => (gw.service.settings.auditTraffic ? "on" : "off");

async function setUp(gw: Gateway, prefix: string): Promise<void> {
  for (let r = 0; r < ROOMS; r++) {
    const room = `${prefix}${r}@${DOMAIN}`;
    for (let o = 0; o < OCCUPANTS; o++) {
      const user = `u${o}@users.bench.test/r`;
      await handle(gw, xml("presence", { from: user, to: `${room}/u${o}`, id: "join" }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })));
      if (o === 0) {
        const form = xml("x", { xmlns: "jabber:x:data", type: "submit" });
        await handle(gw, xml("iq", { from: user, to: room, id: "cfg", type: "set" }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, form)));
      }
    }
  }
}

/** Closed loop for `seconds`: returns messages (and churn operations) per second. */
async function drive(gw: Gateway, prefix: string, seconds: number): Promise<{ ops: number; rate: number; inCommit: number; perBatch: number; cpuUs: number }> {
  let ops = 0;
  const cpuBefore = process.cpuUsage();
  const commitBefore = gw.commitMs;
  const batchesBefore = gw.runner.counters.batches;
  let n = 0;
  const deadline = performance.now() + seconds * 1000;
  const t0 = performance.now();
  const sender = async (k: number): Promise<void> => {
    const room = `${prefix}${k % ROOMS}@${DOMAIN}`;
    const o = 1 + Math.floor(k / ROOMS);
    const user = `u${o}@users.bench.test/r`;
    while (performance.now() < deadline) {
      const id = `m${n++}`;
      if (n % CHURN_EVERY === 0) {
        await handle(gw, xml("presence", { from: user, to: `${room}/u${o}`, type: "unavailable", id }));
        await handle(gw, xml("presence", { from: user, to: `${room}/u${o}`, id }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })));
      } else {
        await handle(gw, xml("message", { from: user, to: room, type: "groupchat", id }, xml("body", {}, "An audited message of about sixty characters, give or take.")));
      }
      ops++;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, (_, k) => sender(k)));
  await gw.runner.drain();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    ops,
    rate: ops / (ms / 1000),
    inCommit: (gw.commitMs - commitBefore) / ms,
    perBatch: ops / Math.max(1, gw.runner.counters.batches - batchesBefore),
    cpuUs: (cpu.user + cpu.system) / Math.max(1, ops),
  };
}

/** A sink that counts bytes and lets the export run at full speed. */
function sink(): Writable & { bytes: number } {
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      out.bytes += chunk.length;
      done();
    },
  }) as Writable & { bytes: number };
  out.bytes = 0;
  return out;
}

async function timedWithMemory<T>(work: () => Promise<T>): Promise<{ result: T; seconds: number; rssStart: number; rssMax: number; heapMax: number }> {
  global.gc?.();
  const rssStart = process.memoryUsage().rss;
  let rssMax = rssStart;
  let heapMax = 0;
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    rssMax = Math.max(rssMax, m.rss);
    heapMax = Math.max(heapMax, m.heapUsed);
  }, 50);
  const t0 = performance.now();
  try {
    const result = await work();
    return { result, seconds: (performance.now() - t0) / 1000, rssStart, rssMax, heapMax };
  } finally {
    clearInterval(timer);
  }
}

const mb = (bytes: number) => fmt(bytes / 2 ** 20);

export async function run(options: BenchOptions): Promise<Report> {
  const rounds = options.quick ? 2 : 8;
  const seconds = options.quick ? 3 : 6;
  const exportRows = options.quick ? 100_000 : 1_000_000;
  const db = await startTestDatabase();
  const dataSource = createDataSource(db.url);
  const notes: string[] = [];
  try {
    await dataSource.initialize();
    await dataSource.runMigrations({ transaction: "each" });
    const version = ((await dataSource.query(`SELECT current_setting('server_version') AS v, current_setting('fsync') AS f`)) as { v: string; f: string }[])[0]!;

    // 1. Auditing on and off, alternating rounds on separate rooms.
    const on = gateway(dataSource, true);
    const off = gateway(dataSource, false);
    await setUp(on, "on");
    await setUp(off, "off");
    const rates = { on: [] as number[], off: [] as number[] };
    const shares = { on: [] as number[], off: [] as number[] };
    const perBatch = { on: [] as number[], off: [] as number[] };
    const cpu = { on: [] as number[], off: [] as number[] };
    for (let round = 0; round < rounds; round++) {
      for (const [label, gw] of [["on", on], ["off", off]] as const) {
        options.log(`traffic auditing ${label}, round ${round + 1}/${rounds}`);
        const result = await drive(gw, label, seconds);
        rates[label].push(result.rate);
        shares[label].push(result.inCommit);
        perBatch[label].push(result.perBatch);
        cpu[label].push(result.cpuUs);
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const auditRows = Number(((await dataSource.query(`SELECT count(*) AS n FROM audit_events`)) as { n: string }[])[0]!.n);
    const row = (label: "on" | "off", title: string): Cell[] => [
      title,
      rates[label].map((r) => fmt(r, 0)).join(" / "),
      fmt(median(rates[label]), 0),
      `${fmt((100 * median(rates[label])) / median(rates.off), 1)}%`,
      `${fmt(100 * median(shares[label]), 0)}%`,
      fmt(median(perBatch[label]), 1),
      fmt(median(cpu[label]), 0),
    ];
    const costRows: Cell[][] = [row("on", "traffic auditing on (entries, exits, messages)"), row("off", "traffic auditing off (changes only)")];

    // 3. Verify the chains written above.
    const verified = await timedWithMemory(() => verifyChains(dataSource, undefined));
    if (verified.result.problems.length > 0) notes.push(`CHECK FAILED: verify found ${verified.result.problems.length} broken chains`);

    // 2. Export a large table: rows made in SQL (they are not a valid chain; export does not check it).
    options.log(`inserting ${exportRows} audit rows`);
    await dataSource.query(
      `INSERT INTO audit_events (room_jid, at, actor_jid, subject_jid, kind, details, seq, prev_hash, hash)
       SELECT 'export' || (i % 100) || '@${DOMAIN}', now() - (i || ' ms')::interval, 'u' || (i % 1000) || '@users.bench.test', 'u' || (i % 1000) || '@users.bench.test',
              CASE WHEN i % 10 = 0 THEN 'occupant.entered' ELSE 'message' END,
              jsonb_build_object('jid', 'u' || (i % 1000) || '@users.bench.test/r', 'nick', 'user' || (i % 1000), 'stanzaId', md5(i::text)),
              i / 100 + 1, repeat('0', 64), md5(i::text) || md5(i::text)
       FROM generate_series(1, ${exportRows}) AS i`,
    );
    const exportTable: Cell[][] = [];
    for (const format of ["ndjson", "csv"] as const) {
      options.log(`exporting as ${format}`);
      const out = sink();
      const measured = await timedWithMemory(() => exportAudit(dataSource, { kinds: [], room: undefined }, { format, out, pseudonyms: new Pseudonymiser(null) }));
      exportTable.push([format, fmt(measured.result, 0), fmt(measured.result / measured.seconds, 0), mb(out.bytes), mb(measured.rssStart), mb(measured.rssMax), mb(measured.heapMax)]);
      if (measured.result < exportRows) notes.push(`CHECK FAILED: ${measured.result} rows exported of ${exportRows}+`);
    }
    exportTable.push([
      "verify (part 1's chains)",
      fmt(verified.result.rows, 0),
      fmt(verified.result.rows / verified.seconds, 0),
      "-",
      mb(verified.rssStart),
      mb(verified.rssMax),
      mb(verified.heapMax),
    ]);

    notes.push(
      `PostgreSQL ${version.v}, fsync=${version.f} (${process.env.DATABASE_URL ? "the server of DATABASE_URL" : "the embedded test server"}). ${ROOMS} rooms of ${OCCUPANTS} occupants per configuration, ${IN_FLIGHT} closed-loop senders, one in ${CHURN_EVERY} operations a leave and a re-entry instead of a message; ${rounds} alternating rounds of ${seconds} s, the median counts.`,
      `Audit rows written in part 1: ${auditRows}. With auditing on, every message adds one chained audit row (SHA-256 in Node, one multi-row INSERT per batch) to its history row; every entry and exit one more.`,
      '"gateway CPU µs/op": the benchmark process\'s CPU time (the engine, effects, chaining, the pg client) per operation, less sensitive to other load on the machine than ops/s; PostgreSQL\'s own work is not in it.',
      "Export: rows streamed through one cursor (pages of 2,000) into a sink that discards them; RSS and heap sampled every 50 ms while it runs (start vs max): flat memory means the export does not grow with the table.",
    );
    return {
      tables: [
        { title: "Group commit with and without traffic auditing (same run)", columns: ["configuration", "ops/s per round", "median ops/s", "vs off", "in commit", "ops/batch", "gateway CPU µs/op"], rows: costRows },
        { title: `Export and verification rate`, columns: ["what", "rows", "rows/s", "output MB", "RSS start MB", "RSS max MB", "heap max MB"], rows: exportTable },
      ],
      notes,
    };
  } finally {
    await dataSource.destroy().catch(() => undefined);
    await db.stop();
  }
}
