// DMUC2 link durability against a real PostgreSQL (docs/PROTOCOL.md "Durability"): the rows the pure
// core's writes leave in dmuc_link_positions and dmuc_replica_queue (committed by RoomStore, as the
// gateway does), and what a restarted gateway loads back from them (room-loader.ts).
//
//   npx tsc -p . && node --test dist/test/integration/dmuc-durability.test.js
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { DataSource } from "typeorm";
import { createDataSource } from "../../ormconfig.js";
import { createLogger } from "../../src/log.js";
import { RoomStore } from "../../src/shell/room-store.js";
import { loadLinks, loadReplicas } from "../../src/shell/room-loader.js";
import { DEFAULT_ROOM_CONFIG, newRoom } from "../../src/core/room/types.js";
import { startTestDatabase, type TestDatabase } from "../support/postgres.js";
import { RoomDriver } from "../helpers/room-driver.js";
import { ArchiveReader } from "../../src/shell/archive-reader.js";
import xml from "@xmpp/xml";

const ROOM = "wallops@channel.avalon.test";
const REPLICA = "dmuc.oulubox.test";
const LOCAL = "oulubox.test";
const RUBENRO = "rubenro@oulubox.test/shaver";
const MSA = "msa@oulubox.test/bicycle";
const DMUC = "urn:xmpp:tmp:dmuc:0";
const MUC_USER = "http://jabber.org/protocol/muc#user";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const PRIMARY_ROOM = "lobby@dmuc.avalon.test";

const rosterPresence = (nick: string, role: string) => `<presence from='${ROOM}/${nick}'><x xmlns='${MUC_USER}'><item affiliation='none' role='${role}'/></x></presence>`;

describe("DMUC2 link state in PostgreSQL: written with each change, loaded back at start", () => {
  let db: TestDatabase;
  let dataSource: DataSource;
  let store: RoomStore;
  const log = createLogger({ level: "error" });
  const d = new RoomDriver(REPLICA, [], { localDomain: LOCAL });

  /** Handles a stanza as the gateway does: its writes committed before anything else happens. */
  async function handle(stanza: string) {
    const out = d.send(stanza);
    const writes = d.effects.flatMap((e) => (e.kind === "store" ? [e.write] : []));
    await store.commit(writes, []);
    return out;
  }

  before(async () => {
    db = await startTestDatabase();
    dataSource = createDataSource(db.url);
    await dataSource.initialize();
    await dataSource.runMigrations({ transaction: "each" });
    store = new RoomStore(dataSource, REPLICA);
  });

  after(async () => {
    await dataSource?.destroy();
    await db?.stop();
  });

  it("a replica's unacknowledged submissions and split-time messages are rows until acknowledged, and come back after a restart", async () => {
    const [check] = await handle(`<iq type='set' id='r1' from='${ROOM}' to='${REPLICA}'><replicate xmlns='${DMUC}' domain='${LOCAL}' keepalive='60' history='50'/></iq>`);
    await handle(`<iq type='result' id='${check!.attrs.id}' from='${LOCAL}' to='${REPLICA}'><directed xmlns='${DMUC}' present='true'/></iq>`);
    await handle(`<iq type='set' id='s1' from='${ROOM}' to='${REPLICA}'><state xmlns='${DMUC}' last='true'>${rosterPresence("Wumpus", "moderator")}</state></iq>`);
    for (const [i, [jid, nick]] of [[RUBENRO, "BigCheese"], [MSA, "Efchen"]].entries()) {
      await handle(rosterPresence(nick!, "participant").replace("<presence ", `<presence to='${REPLICA}' `));
      const [query] = await handle(`<iq type='set' id='e${i}' from='${ROOM}' to='${REPLICA}'><enter xmlns='${DMUC}' jid='${jid}' nick='${nick}'/></iq>`);
      await handle(`<iq type='result' id='${query!.attrs.id}' from='${LOCAL}' to='${REPLICA}'><directed xmlns='${DMUC}' present='true'/></iq>`);
    }
    await handle(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c1'><body>one</body></message>`);
    await handle(`<message from='${MSA}' to='${ROOM}' type='groupchat' id='c2'><body>two</body></message>`);
    const stream = d.state.dmuc.replicated.get(ROOM)!.link.id;
    // A broadcast of the primary's stream 'P', number 1, acknowledging "one".
    await handle(`<message type='groupchat' from='${ROOM}/Wumpus' to='${REPLICA}'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='${ROOM}' id='h1'/><link xmlns='${DMUC}' stream='P' seq='1' ack='1' acked='${stream}'/></message>`);
    // Split: what rubenro says now is kept for the netjoin.
    await handle(`<message type='error' from='${ROOM}' to='${REPLICA}'><error type='cancel'><remote-server-not-found xmlns='${STANZAS}'/></error></message>`);
    await handle(`<message from='${RUBENRO}' to='${ROOM}' type='groupchat' id='c3'><body>three</body></message>`);

    const rows: { stream: string | null; seq: number | null; stanza: string }[] = await dataSource.query(`SELECT stream, seq, stanza FROM dmuc_replica_queue ORDER BY id`);
    assert.deepEqual(rows.map((r) => [r.stream, r.seq, /<body>(.*)<\/body>/.exec(r.stanza)?.[1]]), [[stream, 2, "two"], [null, null, "three"]]);
    const [position] = await dataSource.query(`SELECT p.peer_jid, p.out_stream, p.out_next_seq, p.in_stream, p.in_applied FROM dmuc_link_positions p JOIN rooms r ON r.id = p.room_id WHERE r.jid = $1`, [ROOM]);
    assert.deepEqual(position, { peer_jid: ROOM, out_stream: stream, out_next_seq: 3, in_stream: "P", in_applied: 1 });

    // Killed (nothing else written) and started again: the same stream, "two" to resend as number 2,
    // the primary's stream followed from 1, "three" waiting for the netjoin.
    const restored = (await loadReplicas(dataSource, Date.now(), log)).get(ROOM)!;
    assert.equal(restored.link.id, stream);
    assert.equal(restored.link.peer, "P");
    assert.equal(restored.link.end.channel.inbox.applied, 1);
    assert.deepEqual(restored.link.end.channel.outbox.nextSeq, 3);
    assert.deepEqual(restored.link.end.channel.outbox.unacked.map((e) => [e.seq, e.item.stanza.getChildText("body")]), [[2, "two"]]);
    assert.deepEqual(restored.splitQueue.map((q) => [q.session, q.stanza.getChildText("body")]), [[RUBENRO, "three"]]);

    // The netjoin puts "three" on the link (number 3); the acknowledgement of both empties the queue.
    await handle(`<iq type='set' id='n1' from='${ROOM}' to='${REPLICA}'><netjoin xmlns='${DMUC}' since='2025-12-31T23:59:00Z'>${rosterPresence("BigCheese", "participant")}${rosterPresence("Efchen", "participant")}</netjoin></iq>`);
    const numbered: { seq: number | null }[] = await dataSource.query(`SELECT seq FROM dmuc_replica_queue ORDER BY id`);
    assert.deepEqual(numbered.map((r) => r.seq), [2, 3]);
    await handle(`<message from='${ROOM}' to='${REPLICA}'><link xmlns='${DMUC}' ack='3' acked='${stream}'/></message>`);
    assert.deepEqual(await dataSource.query(`SELECT seq FROM dmuc_replica_queue`), []);
  });

  it("the primary's place in a replica's stream is restored with its link, and goes with it", async () => {
    const primary = new RoomStore(dataSource, "dmuc.avalon.test");
    await primary.commit(
      [
        { op: "room.save", roomJid: PRIMARY_ROOM, config: DEFAULT_ROOM_CONFIG, subject: null, locked: false },
        { op: "link.save", roomJid: PRIMARY_ROOM, replicaJid: REPLICA, domain: LOCAL, state: "active", keepaliveSeconds: 30, historyLimit: 20, lastSeen: new Date(), splitSince: null },
        { op: "link.position", roomJid: PRIMARY_ROOM, peerJid: REPLICA, position: { outStream: null, outNextSeq: null, inStream: "rs", inApplied: 7, earlyOriginIds: [], catchUp: null } },
      ],
      [],
    );
    const rooms = new Map([[PRIMARY_ROOM, newRoom(PRIMARY_ROOM, DEFAULT_ROOM_CONFIG)]]);
    const link = (await loadLinks(dataSource, rooms, Date.now())).get(PRIMARY_ROOM)!.get(REPLICA)!;
    assert.equal(link.state, "split", "split until the replica answers: the netjoin covers what may never have left");
    assert.equal(link.stream.peer, "rs");
    assert.equal(link.stream.end.channel.inbox.applied, 7);
    await primary.commit([{ op: "link.delete", roomJid: PRIMARY_ROOM, replicaJid: REPLICA }, { op: "link.position.delete", roomJid: PRIMARY_ROOM, peerJid: REPLICA }], []);
    const left: unknown[] = await dataSource.query(`SELECT 1 FROM dmuc_link_positions p JOIN rooms r ON r.id = p.room_id WHERE r.jid = $1`, [PRIMARY_ROOM]);
    assert.equal(left.length, 0);
  });

  it("a catch-up page is read after a message of the history that is not archived (a room without archive)", async () => {
    const primary = new RoomStore(dataSource, "dmuc.avalon.test");
    const entry = (i: number) => ({
      stanzaId: `u${i}`,
      nick: "WiZ",
      occupantId: "o",
      senderJid: "squit@eris.test/x",
      at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
      stanza: xml("message", { type: "groupchat", from: `${PRIMARY_ROOM}/WiZ` }, xml("body", {}, `m${i}`), xml("stanza-id", { xmlns: "urn:xmpp:sid:0", by: PRIMARY_ROOM, id: `u${i}` })),
      chars: 1,
    });
    await primary.commit([1, 2, 3].map((i) => ({ op: "history.append" as const, roomJid: PRIMARY_ROOM, entry: entry(i), archived: false })), []);
    const reader = new ArchiveReader(dataSource, log);
    const page = await reader.read({ roomJid: PRIMARY_ROOM, sender: { kind: "anyone" }, includeUnarchived: true, afterId: "u1", from: "oldest", max: 50 });
    assert.deepEqual(page.ok && page.items.map((m) => m.archiveId), ["u2", "u3"]);
    const archiveOnly = await reader.read({ roomJid: PRIMARY_ROOM, sender: { kind: "anyone" }, afterId: "u1", from: "oldest", max: 50 });
    assert.deepEqual(archiveOnly, { ok: false, reason: "unknown-id" }, "a MAM query still knows archived messages only");
  });
});
