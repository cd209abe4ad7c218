// XEP-0313 archives through DMUC2 (issue 10): the room on avalon, one user on avalon itself and users
// of oulubox served by oulubox's replica (mod_dmuc_replica diverts their stanzas to it). A replica-served
// user queries the room's JID like any client; the replica hands the query to the primary on the link,
// the primary answers from its archive, and the answer comes back to the user: the same messages and
// stanza-ids as the primary server's user reads, in the same pages. During a netsplit the replica's
// users are told to wait (the replica's copy is not an archive); after the netjoin they read it again.
//
//   npx tsc -p . && node --test dist/test/e2e/dmuc-mam.test.js
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import xml from "@xmpp/xml";
import { IqError, type TestClient } from "../support/client.js";
import { startFederation, type Federation } from "../support/federation.js";
import { configureRoom, enterRoom, newId, queryArchive, readWholeArchive, stanzaIdOf } from "../support/room-client.js";
import { untilLinkActive, untilServedByReplica } from "../support/rows.js";

const ROOM = "archive@dmuc.avalon.test";
const WAIT_MS = 30_000;
const MESSAGES = 36;
const PAGE = 10;

describe("DMUC2: a replica server's user pages the room's archive (XEP-0313)", () => {
  let fed: Federation;
  let wumpus: TestClient; // argl@avalon.test: a user of the primary's own server
  let valdis: TestClient; // valdis@oulubox.test: the first of oulubox, whose entry makes the link
  let phaedrus: TestClient; // phaedrus@oulubox.test: enters once the link is up, through the replica

  before(async () => {
    fed = await startFederation({
      servers: [
        { name: "avalon", gateway: true },
        { name: "oulubox", gateway: true },
      ],
      // A few dozen messages in a few seconds: the flood limit is not under test here.
      env: { DMUC_RATE_LIMIT: "1000", DMUC_RATE_BURST: "1000" },
    });
  });
  after(() => fed?.stop());

  it("gives the replica-served user the same pages, messages and stanza-ids as the primary server's user", async () => {
    wumpus = await fed.connect("argl", "avalon");
    await wumpus.sendPresence();
    await enterRoom(wumpus, ROOM, "Wumpus");
    await configureRoom(wumpus, ROOM);
    valdis = await fed.connect("valdis", "oulubox");
    await valdis.sendPresence();
    await enterRoom(valdis, ROOM, "Valdis");
    await untilLinkActive(fed.server("avalon").db!.url, ROOM, "dmuc.oulubox.test", WAIT_MS);
    phaedrus = await fed.connect("phaedrus", "oulubox");
    await phaedrus.sendPresence();
    await enterRoom(phaedrus, ROOM, "Phaedrus");
    // The replica took Phaedrus, as its operator sees it: its copy of the room lists his session.
    await untilServedByReplica(fed.server("oulubox").db!.url, ROOM, "phaedrus@oulubox.test", WAIT_MS);

    // Both servers' users talk; each waits for its own echo, so the room's order is the order here.
    const sent: { body: string; from: string; id: string }[] = [];
    // The stanza-ids Phaedrus sees live, through his replica.
    const live = new Map<string, string>();
    for (let i = 0; i < MESSAGES; i++) {
      const [client, nick] = i % 3 === 0 ? [wumpus, "Wumpus"] : i % 3 === 1 ? [phaedrus, "Phaedrus"] : [valdis, "Valdis"];
      const id = `m${i}-${newId()}`;
      const body = i % 5 === 0 ? `Nachricht ${i}: grüße 🐈` : `message ${i}`;
      sent.push({ body, from: `${ROOM}/${nick}`, id });
      await client.send(xml("message", { to: ROOM, type: "groupchat", id }, xml("body", {}, body)));
      const echo = await client.waitFor((el) => el.name === "message" && el.attrs.from === `${ROOM}/${nick}` && el.attrs.id === id, WAIT_MS, `the echo of ${id}`);
      if (client === phaedrus) live.set(id, stanzaIdOf(echo, ROOM)!);
    }
    for (const sender of sent.filter((s) => !live.has(s.id))) {
      const copy = await phaedrus.waitFor((el) => el.name === "message" && el.attrs.id === sender.id, WAIT_MS, `Phaedrus's copy of ${sender.id}`);
      live.set(sender.id, stanzaIdOf(copy, ROOM)!);
    }
    await phaedrus.drain();

    await fed.resetS2sCounts();
    const fromReplicaServer = await readWholeArchive(phaedrus, ROOM, PAGE);
    const fromPrimaryServer = await readWholeArchive(wumpus, ROOM, PAGE);
    const counts = await fed.s2sCounts();

    // The same archive, page for page: bodies, senders, archive ids = the live stanza-ids.
    assert.equal(fromReplicaServer.results.length, MESSAGES);
    assert.equal(fromReplicaServer.pages, fromPrimaryServer.pages);
    assert.equal(fromReplicaServer.count, MESSAGES);
    assert.deepEqual(fromReplicaServer.results.map((r) => r.message.getChildText("body")), sent.map((s) => s.body));
    assert.deepEqual(fromReplicaServer.results.map((r) => r.message.attrs.from), sent.map((s) => s.from));
    assert.deepEqual(fromReplicaServer.results.map((r) => r.id), sent.map((s) => live.get(s.id)));
    assert.deepEqual(fromReplicaServer.results.map((r) => r.id), fromPrimaryServer.results.map((r) => r.id));
    assert.deepEqual(fromReplicaServer.results.map((r) => r.message.getChildText("body")), fromPrimaryServer.results.map((r) => r.message.getChildText("body")));
    // The queries went through the replica (submitted on the link), not straight from the user's server.
    assert.equal(counts.between("oulubox.test", "dmuc.avalon.test").iq, 0, JSON.stringify(counts.pairs));
    assert.ok(counts.between("dmuc.oulubox.test", "dmuc.avalon.test").message >= fromReplicaServer.pages, JSON.stringify(counts.pairs));

    // Backward from the last page (RSM <before/>), and a filter on one occupant: the same for both.
    for (const client of [phaedrus, wumpus]) {
      const last = await queryArchive(client, ROOM, { rsm: { max: PAGE, before: "" } });
      assert.deepEqual(last.results.map((r) => r.id), sent.slice(-PAGE).map((s) => live.get(s.id)));
      const earlier = await queryArchive(client, ROOM, { rsm: { max: PAGE, before: last.fin.rsm.first! } });
      assert.deepEqual(earlier.results.map((r) => r.id), sent.slice(-2 * PAGE, -PAGE).map((s) => live.get(s.id)));
      const byValdis = await readWholeArchive(client, ROOM, PAGE, { with: `${ROOM}/Valdis` });
      assert.deepEqual(byValdis.results.map((r) => r.id), sent.filter((s) => s.from === `${ROOM}/Valdis`).map((s) => live.get(s.id)));
    }
  });

  it("tells the replica's users to wait during a netsplit, and serves them the same archive again after the netjoin", async () => {
    // The fault, unannounced: oulubox and avalon cannot reach each other; Phaedrus talks meanwhile.
    await fed.partition("oulubox", ["avalon"], "bounce");
    await phaedrus.send(xml("message", { to: ROOM, type: "groupchat", id: "split-1" }, xml("body", {}, "anyone there?")));
    // What his client shows of the split: the users behind it go away.
    await phaedrus.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/Wumpus` && el.getChildText("show") === "away", WAIT_MS, "Wumpus shown away");
    await assert.rejects(queryArchive(phaedrus, ROOM, { rsm: { max: PAGE, before: "" } }), (err: unknown) => err instanceof IqError && err.condition === "recipient-unavailable" && err.stanza.getChild("error")?.attrs.type === "wait");

    await fed.unpartition("oulubox", ["avalon"]);
    await phaedrus.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/Wumpus` && el.attrs.type === undefined && el.getChildText("show") === null, 90_000, "Wumpus back after the netjoin");
    await wumpus.waitFor((el) => el.name === "message" && el.getChildText("body") === "anyone there?", WAIT_MS, "Phaedrus's message after the netjoin");
    const fromReplicaServer = await readWholeArchive(phaedrus, ROOM, PAGE);
    const fromPrimaryServer = await readWholeArchive(wumpus, ROOM, PAGE);
    assert.equal(fromReplicaServer.results.length, MESSAGES + 1);
    assert.equal(fromReplicaServer.results.at(-1)!.message.getChildText("body"), "anyone there?");
    assert.deepEqual(fromReplicaServer.results.map((r) => r.id), fromPrimaryServer.results.map((r) => r.id));
  });
});