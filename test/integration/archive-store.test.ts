// The archive's storage side against a real PostgreSQL: rows written by RoomStore, read back by
// ArchiveReader (keyset paging in the room's order, filters, unknown ids, retraction lookups) and
// tombstones written over them.
//
//   npx tsc -p . && node --test dist/test/integration/archive-store.test.js
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import xml from "@xmpp/xml";
import type { DataSource } from "typeorm";
import { createDataSource } from "../../ormconfig.js";
import { createLogger } from "../../src/log.js";
import { ArchiveReader } from "../../src/shell/archive-reader.js";
import { RoomStore } from "../../src/shell/room-store.js";
import type { ArchiveQuery, ArchiveReadResult } from "../../src/core/archive/query.js";
import { DEFAULT_ROOM_CONFIG, type HistoryEntry } from "../../src/core/room/types.js";
import { startTestDatabase, type TestDatabase } from "../support/postgres.js";
import { Writable } from "node:stream";
import { exportHistory } from "../../src/commands/history.js";
import { Pseudonymiser } from "../../src/commands/export-format.js";

const ROOM = "archive@conference.example.org";
const AT = new Date("2026-01-01T00:00:00Z");

function entry(i: number, nick: string, sameInstant: boolean): HistoryEntry {
  const stanza = xml(
    "message",
    { type: "groupchat", from: `${ROOM}/${nick}`, id: `c${i}` },
    xml("body", {}, `message ${i}`),
    xml("origin-id", { xmlns: "urn:xmpp:sid:0", id: `origin-${i}` }),
    xml("stanza-id", { xmlns: "urn:xmpp:sid:0", id: `s${i}`, by: ROOM }),
  );
  // Groups of five messages share one millisecond: the room's order must still hold.
  const at = new Date(AT.getTime() + (sameInstant ? Math.floor(i / 5) : i) * 1000);
  return { stanzaId: `s${i}`, nick, occupantId: `o-${nick}`, senderJid: `${nick}@example.org/phone`, at, stanza, chars: 1 };
}

describe("archive rows: RoomStore writes, ArchiveReader reads (real PostgreSQL)", () => {
  let db: TestDatabase;
  let dataSource: DataSource;
  let reader: ArchiveReader;
  const read = (query: Partial<ArchiveQuery>): Promise<ArchiveReadResult> =>
    reader.read({ roomJid: ROOM, sender: { kind: "anyone" }, from: "oldest", max: 10, ...query });
  const ids = (result: ArchiveReadResult) => (result.ok ? result.items.map((i) => i.archiveId) : [`error ${result.reason}`]);

  before(async () => {
    db = await startTestDatabase();
    dataSource = createDataSource(db.url);
    await dataSource.initialize();
    await dataSource.runMigrations({ transaction: "each" });
    reader = new ArchiveReader(dataSource, createLogger({ level: "error" }));
    const store = new RoomStore(dataSource, "conference.example.org");
    await store.commit([{ op: "room.save", roomJid: ROOM, config: DEFAULT_ROOM_CONFIG, subject: null, locked: false }], []);
    // 40 messages in two batches (one multi-row INSERT each); 30 and 31 kept out of the archive.
    for (const batch of [0, 20]) {
      await store.commit(
        Array.from({ length: 20 }, (_, k) => batch + k).map((i) => ({ op: "history.append" as const, roomJid: ROOM, entry: entry(i, i % 3 === 0 ? "bob" : "alice", true), archived: i !== 30 && i !== 31 })),
        [],
      );
    }
  });
  after(async () => {
    await dataSource?.destroy();
    await db?.stop();
  });

  const archived = Array.from({ length: 40 }, (_, i) => `s${i}`).filter((id) => id !== "s30" && id !== "s31");

  it("pages forward and backward in the room's order, also within one millisecond; counts the whole result", async () => {
    const forward: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await read({ afterId: after });
      assert.ok(page.ok);
      assert.equal(page.count, 38);
      forward.push(...ids(page));
      if (page.complete) break;
      after = forward.at(-1);
    }
    assert.deepEqual(forward, archived);

    const backward: string[] = [];
    let before: string | undefined;
    for (;;) {
      const page = await read({ from: "newest", beforeId: before });
      assert.ok(page.ok);
      backward.unshift(...ids(page));
      if (page.complete) break;
      before = ids(page)[0];
    }
    assert.deepEqual(backward, archived);
  });

  it("filters by time, nick, real JID and ids; an unknown bound is unknown-id; unarchived rows only when asked", async () => {
    assert.deepEqual(ids(await read({ start: new Date(AT.getTime() + 1000), end: new Date(AT.getTime() + 1000), max: 50 })), ["s5", "s6", "s7", "s8", "s9"]);
    assert.deepEqual(ids(await read({ sender: { kind: "nick", nick: "bob" }, max: 50 })), archived.filter((id) => Number(id.slice(1)) % 3 === 0));
    assert.deepEqual(ids(await read({ sender: { kind: "real-jid", jid: "bob@example.org", bare: true }, max: 3 })), ["s0", "s3", "s6"]);
    assert.deepEqual(ids(await read({ sender: { kind: "real-jid", jid: "bob@example.org/laptop", bare: false } })), []);
    assert.deepEqual(ids(await read({ ids: ["s7", "s2", "nope"] })), ["s2", "s7"]);
    assert.deepEqual(ids(await read({ afterId: "nope" })), ["error unknown-id"]);
    assert.deepEqual(ids(await read({ ids: ["s30"] })), []);
    assert.deepEqual(ids(await read({ ids: ["s30"], includeUnarchived: true })), ["s30"]);
    // A retraction's target, by origin-id, only among its author's messages.
    assert.deepEqual(ids(await read({ idOrOriginId: "origin-4", sender: { kind: "real-jid", jid: "alice@example.org", bare: true }, includeUnarchived: true })), ["s4"]);
    assert.deepEqual(ids(await read({ idOrOriginId: "origin-4", sender: { kind: "real-jid", jid: "bob@example.org", bare: true }, includeUnarchived: true })), []);
  });

  it("a tombstone replaces the stored message in place: same id and position, no body", async () => {
    const tombstone = xml("message", { type: "groupchat", from: `${ROOM}/alice`, id: "c4" }, xml("retracted", { xmlns: "urn:xmpp:message-retract:1", stamp: "2026-01-02T00:00:00Z" }));
    await new RoomStore(dataSource, "conference.example.org").commit([{ op: "history.retract", roomJid: ROOM, stanzaId: "s4", tombstone }], []);
    const page = await read({ max: 6 });
    assert.deepEqual(ids(page), ["s0", "s1", "s2", "s3", "s4", "s5"]);
    const stored = page.ok ? page.items[4]!.stanza : undefined;
    assert.ok(stored?.getChild("retracted", "urn:xmpp:message-retract:1"));
    assert.equal(stored?.getChild("body"), undefined);
    const [row] = await dataSource.query(`SELECT body FROM history_messages WHERE stanza_id = 's4'`);
    assert.equal(row.body, null);
  });

  it("the history export marks the retracted message and only it", async () => {
    let text = "";
    const out = new Writable({ write: (chunk, _encoding, done) => ((text += String(chunk)), done()) });
    const count = await exportHistory(dataSource, { room: ROOM }, { format: "ndjson", out, pseudonyms: new Pseudonymiser(null) });
    const rows = text.trim().split("\n").map((line) => JSON.parse(line) as { stanza_id: string; body: string | null; retracted: boolean });
    assert.equal(count, 40);
    assert.deepEqual(rows.filter((r) => r.retracted).map((r) => r.stanza_id), ["s4"]);
    assert.equal(rows.find((r) => r.stanza_id === "s5")?.body, "message 5");
  });
});
