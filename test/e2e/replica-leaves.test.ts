// Issue 16 point 4: a replica forgets a room none of its users is in. Two real Prosody servers over s2s,
// each with a gateway: the room on avalon, a user of oulubox enters (the room is linked to oulubox's
// replica), then leaves. After the grace (60 s) the replica tells the primary it leaves: the link's row
// on the primary and the copy's row on the replica are gone. The user comes back and the room works
// through a new link. Bounded waits, default settings; no waiting on the gateways' logs.
//
//   npx tsc -p . && node --test dist/test/e2e/replica-leaves.test.js
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import xml from "@xmpp/xml";
import pg from "pg";
import type { TestClient } from "../support/client.js";
import { startFederation, type Federation } from "../support/federation.js";

const ROOM = "leaving@dmuc.avalon.test";
const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";
const WAIT_MS = 60_000;
/** The grace (60 s) and the exchange, with room for a loaded machine. */
const FORGET_WAIT_MS = 240_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function count(url: string, sql: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>(sql, [ROOM]);
    return Number(rows[0]!.n);
  } finally {
    await client.end();
  }
}

/** Polls until `read` gives `want` (or the bounded wait ends); returns the last value. */
async function until(read: () => Promise<number>, want: number, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  let value = await read();
  while (value !== want && Date.now() < deadline) {
    await sleep(1_000);
    value = await read();
  }
  return value;
}

async function enter(client: TestClient, nick: string): Promise<void> {
  await client.send(xml("presence", { to: `${ROOM}/${nick}` }, xml("x", { xmlns: MUC })));
  await client.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/${nick}` && !!el.getChild("x", MUC_USER)?.getChildren("status").some((s) => s.attrs.code === "110"), WAIT_MS, `${nick}'s own presence`);
}

describe("a replica leaves a room its users left", () => {
  let fed: Federation;
  before(async () => {
    fed = await startFederation({ servers: [{ name: "avalon", gateway: true }, { name: "oulubox", gateway: true }] });
  });
  after(() => fed?.stop());

  it("drops the link and the copy after the grace, and links again when a user comes back", async () => {
    const avalon = fed.server("avalon");
    const oulubox = fed.server("oulubox");
    const owner = await fed.connect("owner", "avalon");
    const wumpus = await fed.connect("argl", "oulubox");
    await Promise.all([owner.sendPresence(), wumpus.sendPresence()]);
    await enter(owner, "Owner");
    await owner.request(xml("iq", { type: "set", to: ROOM }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, xml("x", { xmlns: "jabber:x:data", type: "submit" }))), WAIT_MS);
    await enter(wumpus, "Wumpus");

    const links = () => count(avalon.db!.url, "SELECT count(*) AS n FROM replicas p JOIN rooms r ON r.id = p.room_id WHERE r.jid = $1");
    const copies = () => count(oulubox.db!.url, "SELECT count(*) AS n FROM rooms WHERE jid = $1 AND role = 'replica'");
    assert.equal(await until(links, 1, WAIT_MS), 1, "the room is linked to oulubox's replica");
    assert.equal(await until(copies, 1, WAIT_MS), 1, "the replica keeps a copy");

    await wumpus.send(xml("presence", { to: `${ROOM}/Wumpus`, type: "unavailable" }));
    await wumpus.waitFor((el) => el.name === "presence" && el.attrs.type === "unavailable" && el.attrs.from === `${ROOM}/Wumpus`, WAIT_MS, "Wumpus's own exit");
    assert.equal(await until(links, 0, FORGET_WAIT_MS), 0, "the primary dropped the link");
    assert.equal(await until(copies, 0, WAIT_MS), 0, "the replica dropped its copy");

    // Back again: linked again from the start, and messages flow both ways.
    await enter(wumpus, "Wumpus");
    await owner.send(xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, "welcome back")));
    await wumpus.waitFor((el) => el.name === "message" && el.getChildText("body") === "welcome back", WAIT_MS, "the owner's message");
    await wumpus.send(xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, "thanks")));
    await owner.waitFor((el) => el.name === "message" && el.getChildText("body") === "thanks", WAIT_MS, "Wumpus's message");
    assert.equal(await until(links, 1, WAIT_MS), 1, "linked again");
  });
});
