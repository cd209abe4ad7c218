// DMUC2 durability between real servers (issue 9 point 4): a replica gateway killed with SIGKILL
// during a split, after its users said things the primary has not had yet, restarted on its database;
// and a split longer than the room's history length. After each heal every user must have every
// message exactly once, and every history must hold each message once. The faults are unannounced and
// every setting is the default: nobody waits for a gateway to notice a split or a heal before talking;
// afterwards each user's messages are awaited, bounded.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import xml from "@xmpp/xml";
import pg from "pg";
import { untilLinkActive, untilRow } from "../support/rows.js";
import type { TestClient } from "../support/client.js";
import { startFederation, type Federation } from "../support/federation.js";

const ROOM = "wallops@dmuc.avalon.test";
const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";
/** The room's history length: the long split sends three times as many messages. */
const HISTORY_LENGTH = 20;

interface Person {
  nick: string;
  user: string;
  server: string;
  /** The component that delivers the room to this user: a barrier for drain(). */
  via: string;
  client?: TestClient;
  /** Bodies of the room's groupchat messages received, in order, duplicates included. */
  log: string[];
}

const people: Person[] = [
  { nick: "Owner", user: "owner", server: "avalon", via: "dmuc.avalon.test", log: [] },
  { nick: "Wumpus", user: "argl", server: "oulubox", via: "dmuc.oulubox.test", log: [] },
  { nick: "Valdis", user: "valdis", server: "oulubox", via: "dmuc.oulubox.test", log: [] },
];
const person = (nick: string) => people.find((p) => p.nick === nick)!;
const sent: string[] = [];

const isRoomMessage = (el: { name: string; attrs: Record<string, string>; getChildText(n: string): string | null }) =>
  el.name === "message" && el.attrs.type === "groupchat" && (el.attrs.from ?? "").startsWith(`${ROOM}/`) && el.getChildText("body") !== null;

async function say(nick: string, body: string): Promise<void> {
  sent.push(body);
  await person(nick).client!.send(xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, body)));
}

/** Waits until `who` has received every body in `bodies` (each arrival is logged, duplicates too). */
async function receive(who: Person, bodies: string[]): Promise<void> {
  while (!bodies.every((b) => who.log.includes(b))) {
    const message = await who.client!.waitFor(isRoomMessage, 60_000, `${who.nick}: ${bodies.filter((b) => !who.log.includes(b)).slice(0, 5).join(", ")}`);
    who.log.push(message.getChildText("body")!);
  }
}

async function everyoneHasEverything(): Promise<void> {
  await Promise.all(people.map((p) => receive(p, sent)));
}

async function historyBodies(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const rows = await client.query<{ body: string }>(`SELECT h.body FROM history_messages h JOIN rooms r ON r.id = h.room_id WHERE r.jid = $1 ORDER BY h.id`, [ROOM]);
    return rows.rows.map((r) => r.body);
  } finally {
    await client.end();
  }
}

describe("DMUC2 durability across real servers", () => {
  let fed: Federation;

  before(async () => {
    fed = await startFederation({
      servers: [
        { name: "avalon", gateway: true },
        { name: "oulubox", gateway: true },
      ],
      env: process.env.TRACE_GATEWAYS ? { DMUC_XMPP_DEBUG: "true" } : {},
    });
  });
  after(() => fed?.stop());

  it("sets up the room with two users behind oulubox's replica", async () => {
    for (const p of people) {
      p.client = await fed.connect(p.user, p.server);
      await p.client.sendPresence();
      await p.client.send(xml("presence", { to: `${ROOM}/${p.nick}` }, xml("x", { xmlns: MUC })));
      await p.client.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/${p.nick}` && !!el.getChild("x", MUC_USER), 20_000);
      if (p.nick === "Owner") {
        const form = xml(
          "x",
          { xmlns: "jabber:x:data", type: "submit" },
          xml("field", { var: "FORM_TYPE" }, xml("value", {}, "http://jabber.org/protocol/muc#roomconfig")),
          xml("field", { var: "muc#roomconfig_persistentroom" }, xml("value", {}, "1")),
          xml("field", { var: "muc#roomconfig_historylength" }, xml("value", {}, String(HISTORY_LENGTH))),
        );
        await p.client.request(xml("iq", { type: "set", to: ROOM, id: "cfg" }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, form)), 20_000);
      }
    }
    // The room is served to oulubox's users by its replica, as its operator sees it (its rows), before
    // any fault: linking at entry is not what this file tests.
    const replicaDb = fed.server("oulubox").db!.url;
    await untilRow(replicaDb, `SELECT 1 FROM occupants o JOIN rooms r ON r.id = o.room_id WHERE r.jid = $1 AND r.role = 'replica' GROUP BY r.id HAVING count(*) = 2`, [ROOM], "both oulubox users served by the replica");
    await untilLinkActive(fed.server("avalon").db!.url, ROOM, "dmuc.oulubox.test");
    for (const p of people) await say(p.nick, `calm ${p.nick}`);
    await everyoneHasEverything();
  });

  it("a replica gateway killed (SIGKILL) during a split, after its users talked, loses nothing and repeats nothing", async () => {
    await fed.stopS2s("oulubox");
    await say("Owner", "kill: the owner talks during the split");
    await say("Wumpus", "kill: Wumpus talks to Valdis during the split");
    await say("Valdis", "kill: Valdis answers Wumpus");
    // Local continuation: the two oulubox users hear each other at once.
    await receive(person("Valdis"), ["kill: Wumpus talks to Valdis during the split"]);
    await receive(person("Wumpus"), ["kill: Valdis answers Wumpus"]);
    await fed.killGateway("oulubox");
    await fed.startGateway("oulubox");
    await fed.startS2s("oulubox");
    await everyoneHasEverything();
  });

  it(`a split longer than the room's history (${3 * HISTORY_LENGTH} messages, history ${HISTORY_LENGTH}): the split side gets every one at netjoin`, async () => {
    await fed.stopS2s("oulubox");
    // Paced under the room's default flood limit (10 messages a second).
    for (let i = 1; i <= 3 * HISTORY_LENGTH; i++) {
      await say("Owner", `long split ${i}`);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    await say("Wumpus", "long split: Wumpus from oulubox");
    await receive(person("Owner"), sent.filter((b) => b.startsWith("long split ") && !b.includes("Wumpus")));
    await fed.startS2s("oulubox");
    await everyoneHasEverything();
  });

  it("delivered every message exactly once to everyone, and every history holds them all once", async () => {
    for (const p of people) {
      for (const extra of (await p.client!.drain(p.via)).filter(isRoomMessage)) p.log.push(extra.getChildText("body")!);
      const counts = new Map<string, number>();
      for (const body of p.log) counts.set(body, (counts.get(body) ?? 0) + 1);
      assert.deepEqual([...counts.entries()].filter(([, n]) => n !== 1), [], `${p.nick} got a message more than once`);
      assert.deepEqual([...counts.keys()].sort(), [...sent].sort(), `${p.nick} got every message`);
    }
    for (const server of ["avalon", "oulubox"]) {
      const bodies = await historyBodies(fed.server(server).db!.url);
      assert.deepEqual([...bodies].sort(), [...sent].sort(), `the history on ${server}`);
    }
  });
});
