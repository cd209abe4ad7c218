// The audit trail's hash chains on a real PostgreSQL: rows chained by the store under group commit
// and concurrent rooms, `dmuc-gateway audit verify` finding an UPDATE, a DELETE and INSERTs made with
// a plain SQL client, retention purges that keep the chains verifiable, and anchored heads.
//
//   npx tsc -p . && node --test dist/test/integration/audit-chain.test.js
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import xml from "@xmpp/xml";
import pg from "pg";
import type { DataSource } from "typeorm";
import { createDataSource } from "../../ormconfig.js";
import type { AuditRecord } from "../../src/core/effects.js";
import type { StoreWrite } from "../../src/core/store-writes.js";
import { DEFAULT_ROOM_CONFIG } from "../../src/core/room/types.js";
import { RoomStore } from "../../src/shell/room-store.js";
import { purgeExpired } from "../../src/shell/retention.js";
import { GATEWAY_MAIN } from "../support/gateway.js";
import { startTestDatabase, type TestDatabase } from "../support/postgres.js";

const SERVICE = "conference.example.org";
const A = `alpha@${SERVICE}`;
const B = `beta@${SERVICE}`;
const DAY = 86_400_000;

function cli(url: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [GATEWAY_MAIN, ...args],
      { env: { ...process.env, DATABASE_URL: url, DMUC_XMPP_SERVICE: "xmpp://127.0.0.1:5347", DMUC_DOMAIN: SERVICE, DMUC_SECRET: "s3cret", DMUC_LOG_LEVEL: "error" } },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const event = (roomJid: string | null, kind: string, actor: string, details: Record<string, unknown>): AuditRecord => ({ kind, roomJid, actorJid: actor, subjectJid: actor, details });
const message = (roomJid: string, n: number): StoreWrite => ({
  op: "history.append",
  roomJid,
  entry: {
    stanzaId: `${roomJid}-m${n}`,
    nick: "alice",
    occupantId: "occ-a",
    senderJid: "alice@example.org/phone",
    at: new Date(Date.now() - (n < 3 ? 40 * DAY : 0)),
    stanza: xml("message", { type: "groupchat" }, xml("body", {}, `message ${n}`)),
    chars: 10,
  },
  archived: true,
});

describe("audit hash chains", () => {
  let db: TestDatabase;
  let dataSource: DataSource;
  let sql: pg.Client;
  let dir: string;
  /** The store writes rows "40 days ago" until the clock is moved to now. */
  let clock = new Date(Date.now() - 40 * DAY);
  let store: RoomStore;

  before(async () => {
    db = await startTestDatabase();
    dataSource = createDataSource(db.url);
    await dataSource.initialize();
    await dataSource.runMigrations({ transaction: "each" });
    store = new RoomStore(dataSource, SERVICE, () => clock);
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
    dir = await mkdtemp(join(tmpdir(), "dmuc-audit-test-"));
  });

  after(async () => {
    await sql?.end();
    await dataSource?.destroy();
    await db?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("chains each room's rows in commit order, under concurrent batches", async () => {
    const rooms = [A, B].map((roomJid): StoreWrite => ({ op: "room.save", roomJid, config: DEFAULT_ROOM_CONFIG, subject: null, locked: false }));
    await store.commit(rooms, [event(A, "room.created", "alice@example.org", {}), event(B, "room.created", "bob@example.org", {})]);
    // Batches submitted together, as the effect runner's group commit and a purge may: one at a time.
    await Promise.all(
      [0, 1, 2, 3, 4].map((n) =>
        store.commit([message(A, n), message(B, n)], [
          event(A, "message", "alice@example.org", { stanzaId: `${A}-m${n}`, n }),
          event(B, "message", "bob@example.org", { stanzaId: `${B}-m${n}`, nested: { z: [1, "two"], a: null } }),
          event(null, "dmuc.refused", "replica.example.net", { n }),
        ]),
      ),
    );
    const chains = await sql.query(`SELECT room_jid, array_agg(seq ORDER BY id) AS seqs FROM audit_events GROUP BY room_jid ORDER BY room_jid`);
    assert.deepEqual(
      chains.rows.map((r) => [r.room_jid, r.seqs.map(Number)]),
      [
        [A, [1, 2, 3, 4, 5, 6]],
        [B, [1, 2, 3, 4, 5, 6]],
        [SERVICE, [1, 2, 3, 4, 5]],
      ],
    );
    const verified = await cli(db.url, "audit", "verify");
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /^ok: 17 rows in 3 chain\(s\) checked$/m);
  });

  it("a new store (a restarted gateway) continues the chains it finds", async () => {
    const restarted = new RoomStore(dataSource, SERVICE, () => clock);
    await restarted.commit([], [event(A, "config.changed", "alice@example.org", { changes: { name: { from: "", to: "Alpha" } } })]);
    const head = await sql.query(`SELECT seq FROM audit_events WHERE room_jid = $1 ORDER BY seq DESC LIMIT 1`, [A]);
    assert.equal(Number(head.rows[0].seq), 7);
    store = restarted;
    assert.equal((await cli(db.url, "audit", "verify", "--room", A)).code, 0);
  });

  it("finds an UPDATE of one row, and is satisfied again when it is undone", async () => {
    const row = (await sql.query(`SELECT id, details FROM audit_events WHERE room_jid = $1 AND seq = 3`, [A])).rows[0];
    await sql.query(`UPDATE audit_events SET details = jsonb_set(details, '{n}', '99') WHERE id = $1`, [row.id]);
    const found = await cli(db.url, "audit", "verify");
    assert.equal(found.code, 1);
    assert.deepEqual(found.stdout.trim().split("\n"), [
      `${A}: row seq 3 (id ${row.id}, message) does not match its hash: changed`,
      "1 room(s) with a broken chain: 18 rows in 3 chain(s) checked",
    ]);
    await sql.query(`UPDATE audit_events SET details = $2 WHERE id = $1`, [row.id, row.details]);
    assert.equal((await cli(db.url, "audit", "verify")).code, 0);
  });

  it("finds a DELETE of one row", async () => {
    const row = (await sql.query(`SELECT * FROM audit_events WHERE room_jid = $1 AND seq = 4`, [B])).rows[0];
    await sql.query(`DELETE FROM audit_events WHERE id = $1`, [row.id]);
    const found = await cli(db.url, "audit", "verify", "--room", B);
    assert.equal(found.code, 1);
    assert.equal(found.stdout.split("\n")[0], `${B}: row seq 4 is missing (the chain goes from seq 3 to 5): removed`);
    const columns = Object.keys(row);
    await sql.query(`INSERT INTO audit_events (${columns.join(", ")}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(", ")})`, columns.map((c) => row[c]));
    assert.equal((await cli(db.url, "audit", "verify")).code, 0);
  });

  it("finds an INSERT: a row outside the chain, and a forged row at its end", async () => {
    const naive = await sql.query(`INSERT INTO audit_events (room_jid, actor_jid, kind, details) VALUES ($1, 'mallory@example.org', 'occupant.entered', '{}') RETURNING id`, [A]);
    const found = await cli(db.url, "audit", "verify");
    assert.equal(found.code, 1);
    assert.equal(found.stdout.split("\n")[0], `${A}: row id ${naive.rows[0].id} (occupant.entered) has no place in the chain: inserted`);
    await sql.query(`DELETE FROM audit_events WHERE id = $1`, [naive.rows[0].id]);

    const head = (await sql.query(`SELECT seq, hash FROM audit_events WHERE room_jid = $1 ORDER BY seq DESC LIMIT 1`, [B])).rows[0];
    const forged = await sql.query(
      `INSERT INTO audit_events (room_jid, actor_jid, kind, details, seq, prev_hash, hash) VALUES ($1, 'mallory@example.org', 'affiliation.changed', '{}', $2, $3, $4) RETURNING id`,
      [B, Number(head.seq) + 1, head.hash, "f".repeat(64)],
    );
    const again = await cli(db.url, "audit", "verify");
    assert.equal(again.code, 1);
    assert.equal(again.stdout.split("\n")[0], `${B}: row seq ${Number(head.seq) + 1} (id ${forged.rows[0].id}, affiliation.changed) does not match its hash: changed`);
    await sql.query(`DELETE FROM audit_events WHERE id = $1`, [forged.rows[0].id]);
    assert.equal((await cli(db.url, "audit", "verify")).code, 0);
  });

  it("purges rows past retention, records it in the chain, and still verifies", async () => {
    clock = new Date();
    await store.commit([], [event(A, "subject.changed", "alice@example.org", { subject: "new" })]);
    const before = Number((await sql.query(`SELECT count(*) AS n FROM history_messages WHERE room_jid = $1`, [A])).rows[0].n);
    assert.equal(before, 5);
    const summary = await purgeExpired(dataSource, store, { defaultDays: 30, minDays: 1, maxDays: 0 }, new Date());
    assert.deepEqual(summary, { rooms: 3, history: 6, audit: 18 });
    // Messages older than 30 days went (0, 1, 2 in each room); the audit rows before now went too.
    const history = await sql.query(`SELECT stanza_id FROM history_messages WHERE room_jid = $1 ORDER BY sent_at, id`, [A]);
    assert.deepEqual(history.rows.map((r) => r.stanza_id), [`${A}-m3`, `${A}-m4`]);
    const kinds = await sql.query(`SELECT kind, seq, details FROM audit_events WHERE room_jid = $1 ORDER BY seq`, [A]);
    assert.deepEqual(kinds.rows.map((r) => [r.kind, Number(r.seq)]), [["subject.changed", 8], ["retention.purged", 9]]);
    assert.deepEqual({ ...kinds.rows[1].details, before: undefined }, { days: 30, history: 3, audit: 7, chainStart: { seq: 8, prevHash: kinds.rows[1].details.chainStart.prevHash }, before: undefined });
    const purgedEntirely = await sql.query(`SELECT kind, seq, details FROM audit_events WHERE room_jid = $1 ORDER BY seq`, [B]);
    assert.deepEqual(purgedEntirely.rows.map((r) => [r.kind, Number(r.seq), r.details.chainStart]), [["retention.purged", 7, "this-row"]]);
    const verified = await cli(db.url, "audit", "verify");
    assert.equal(verified.code, 0, verified.stdout);

    // Deleting the first row left after the purge is still found.
    await sql.query(`DELETE FROM audit_events WHERE room_jid = $1 AND seq = 8`, [A]);
    const found = await cli(db.url, "audit", "verify", "--room", A);
    assert.equal(found.code, 1);
    assert.equal(found.stdout.split("\n")[0], `${A}: the chain starts at seq 9, the last retention purge left it starting at seq 8`);
  });

  it("an anchored head finds a truncated chain, which the chain alone cannot", async () => {
    await store.commit([], [event(B, "message", "bob@example.org", { stanzaId: "x" }), event(B, "message", "bob@example.org", { stanzaId: "y" })]);
    const head = await cli(db.url, "audit", "head", "--room", B);
    assert.equal(head.code, 0);
    assert.match(head.stdout, new RegExp(`^${B} 9 [0-9a-f]{64} \\S+Z\\n$`));
    const anchor = join(dir, "heads.log");
    await writeFile(anchor, head.stdout);
    await sql.query(`DELETE FROM audit_events WHERE room_jid = $1 AND seq = 9`, [B]);
    assert.equal((await cli(db.url, "audit", "verify", "--room", B)).code, 0, "a truncated tail leaves a valid chain");
    const found = await cli(db.url, "audit", "verify", "--room", B, "--anchor", anchor);
    assert.equal(found.code, 1);
    assert.equal(found.stdout.split("\n")[0], `${B}: rows after seq 8 are missing: the anchored head is seq 9: removed`);
  });

  it("audit --follow prints what is committed after it started, until interrupted", async () => {
    const follower = spawn(process.execPath, [GATEWAY_MAIN, "audit", "--room", A, "--kind", "occupant.entered", "--follow"], {
      env: { ...process.env, DATABASE_URL: db.url, DMUC_XMPP_SERVICE: "xmpp://127.0.0.1:5347", DMUC_DOMAIN: SERVICE, DMUC_SECRET: "s3cret", DMUC_LOG_LEVEL: "error" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    const waiting: (() => void)[] = [];
    follower.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      for (const wake of waiting.splice(0)) wake();
    });
    const lines = async (n: number) => {
      const limit = Date.now() + 60_000;
      while (out.split("\n").filter(Boolean).length < n) {
        assert.ok(Date.now() < limit && follower.exitCode === null, `no ${n} lines: ${out}`);
        await new Promise<void>((resolve) => {
          waiting.push(resolve);
          setTimeout(resolve, 1000).unref();
        });
      }
    };
    const entered = (n: number) => event(A, "occupant.entered", `user${n}@example.org`, { jid: `user${n}@example.org/r`, nick: `u${n}` });
    // Committed while the follower starts and after: each printed once, in order.
    await store.commit([], [entered(1), event(A, "message", "user1@example.org", { stanzaId: "m" })]);
    await lines(1);
    await store.commit([], [entered(2), entered(3)]);
    await lines(3);
    follower.kill("SIGINT");
    const code = await new Promise<number | null>((resolve) => follower.once("exit", resolve));
    assert.equal(code, 0);
    assert.deepEqual(out.trim().split("\n").map((l) => JSON.parse(l).actor), ["user1@example.org", "user2@example.org", "user3@example.org"]);
  });

  it("refuses bad command lines with one message", async () => {
    const bad = await cli(db.url, "audit", "--since", "yesterday");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--since 'yesterday' is not an ISO 8601 time or an age such as 24h/);
    const follow = await cli(db.url, "audit", "--follow", "--format", "json");
    assert.equal(follow.code, 2);
    assert.equal((await cli(db.url, "history")).code, 2);
  });
});
