// The group commit on a real PostgreSQL (issue 14): a burst of messages with their audit rows is one
// autocommitted statement, stored in the order the rooms broadcast them, with audit chains that
// `audit verify` accepts; a row the database refuses loses only its own message, and the chains
// stay verifiable after it.
//
//   npx tsc -p . && node --test dist/test/integration/group-commit.test.js
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import pg from "pg";
import type { DataSource } from "typeorm";
import { createDataSource } from "../../ormconfig.js";
import { verifyChains } from "../../src/commands/audit-verify.js";
import type { Effect } from "../../src/core/effects.js";
import { DEFAULT_ROOM_CONFIG } from "../../src/core/room/types.js";
import { createLogger } from "../../src/log.js";
import { ArchiveReader } from "../../src/shell/archive-reader.js";
import { EffectRunner } from "../../src/shell/effect-runner.js";
import { RoomStore } from "../../src/shell/room-store.js";
import { startTestDatabase, type TestDatabase } from "../support/postgres.js";

const SERVICE = "conference.example.org";
const ROOMS = ["one", "two", "three"].map((name) => `${name}@${SERVICE}`);

/** A groupchat message as the room broadcasts it, its history row and its audit row, in one unit. */
function messageEffects(roomJid: string, id: string, body: string): Effect[] {
  const stanza = xml("message", { from: `${roomJid}/alice`, type: "groupchat", id }, xml("body", {}, body), xml("stanza-id", { xmlns: "urn:xmpp:sid:0", by: roomJid, id }));
  return [
    {
      kind: "store",
      write: { op: "history.append", roomJid, entry: { stanzaId: id, nick: "alice", occupantId: "occ-a", senderJid: "alice@example.org/phone", at: new Date(), stanza, chars: body.length }, archived: true },
    },
    { kind: "audit", record: { kind: "message", roomJid, actorJid: "alice@example.org", subjectJid: null, details: { stanzaId: id } } },
    { kind: "send", stanza },
  ];
}

describe("group commit", () => {
  let db: TestDatabase;
  let dataSource: DataSource;
  let sql: pg.Client;
  let store: RoomStore;
  let runner: EffectRunner;
  const sent: string[] = [];
  // The refused row is logged (store.write_rejected); the test reads the rows, not the log.
  const log = createLogger({ level: "error", sink: { write: () => undefined } });

  before(async () => {
    db = await startTestDatabase();
    dataSource = createDataSource(db.url);
    await dataSource.initialize();
    await dataSource.runMigrations({ transaction: "each" });
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
    store = new RoomStore(dataSource, SERVICE);
    runner = new EffectRunner(store, (stanza: Element) => sent.push(stanza.attrs.id as string), log, new ArchiveReader(dataSource, log));
    await store.commit(
      ROOMS.map((roomJid) => ({ op: "room.save", roomJid, config: DEFAULT_ROOM_CONFIG, subject: null, locked: false })),
      ROOMS.map((roomJid) => ({ kind: "room.created", roomJid, actorJid: "alice@example.org", details: {} })),
    );
  });

  after(async () => {
    await sql?.end();
    await dataSource?.destroy();
    await db?.stop();
  });

  const historyOf = async (roomJid: string) =>
    (await sql.query(`SELECT stanza_id FROM history_messages WHERE room_jid = $1 ORDER BY seq`, [roomJid])).rows.map((r) => r.stanza_id as string);
  const auditOf = async (roomJid: string) =>
    (await sql.query(`SELECT kind, seq, details->>'stanzaId' AS stanza_id FROM audit_events WHERE room_jid = $1 ORDER BY seq`, [roomJid])).rows.map((r) => [r.kind, Number(r.seq), r.stanza_id]);

  it("stores a burst in one statement, in broadcast order, with verifiable chains", async () => {
    const submitted = new Map<string, string[]>(ROOMS.map((r) => [r, []]));
    const before = runner.counters.statements;
    // Submitted in one turn, as stanzas read together from the socket: one batch.
    for (let n = 0; n < 300; n++) {
      const roomJid = ROOMS[(n * 7) % 3]!;
      const id = `burst-${n}`;
      submitted.get(roomJid)!.push(id);
      runner.submit(messageEffects(roomJid, id, `message ${n} <&> "quoted"`), roomJid);
    }
    await runner.drain();

    assert.equal(runner.counters.statements - before, 1, "300 history rows and 300 audit rows in one statement");
    const transactions = await sql.query(`SELECT count(DISTINCT xmin::text) AS n FROM history_messages`);
    assert.equal(Number(transactions.rows[0].n), 1);
    for (const roomJid of ROOMS) {
      const ids = submitted.get(roomJid)!;
      assert.deepEqual(await historyOf(roomJid), ids, "history in the order the room broadcast it");
      assert.deepEqual(sent.filter((id) => ids.includes(id)), ids, "broadcast in submission order");
      assert.deepEqual(await auditOf(roomJid), [["room.created", 1, null], ...ids.map((id, i) => ["message", i + 2, id])]);
    }
    const bodies = await sql.query(`SELECT body FROM history_messages WHERE stanza_id = 'burst-5'`);
    assert.equal(bodies.rows[0].body, `message 5 <&> "quoted"`);
    const verified = await verifyChains(dataSource, undefined);
    assert.deepEqual(verified.problems, []);
    assert.equal(verified.rows, 303);
  });

  it("a row the database refuses loses only its own message; the chains stay verifiable", async () => {
    const [one, two] = [ROOMS[0]!, ROOMS[1]!];
    const [historyOne, historyTwo] = [await historyOf(one), await historyOf(two)];
    const auditOne = await auditOf(one);
    runner.submit(messageEffects(one, "good-1", "fine"), one);
    // PostgreSQL refuses a NUL character in text: the whole one-statement batch fails, then the
    // runner stores the units one by one.
    runner.submit(messageEffects(one, "bad", "nul \u0000 here"), one);
    runner.submit(messageEffects(one, "good-2", "fine too"), one);
    runner.submit(messageEffects(two, "good-3", "elsewhere"), two);
    await runner.drain();

    assert.deepEqual(await historyOf(one), [...historyOne, "good-1", "good-2"]);
    assert.deepEqual(await historyOf(two), [...historyTwo, "good-3"]);
    const next = auditOne.length + 1;
    assert.deepEqual((await auditOf(one)).slice(auditOne.length), [["message", next, "good-1"], ["message", next + 1, "good-2"]]);
    const verified = await verifyChains(dataSource, undefined);
    assert.deepEqual(verified.problems, []);

    // After the failure the store continues the chains from the database, one statement per batch again.
    runner.submit(messageEffects(one, "after", "and on"), one);
    await runner.drain();
    assert.deepEqual((await auditOf(one)).at(-1), ["message", next + 2, "after"]);
    assert.deepEqual((await verifyChains(dataSource, undefined)).problems, []);
  });
});
