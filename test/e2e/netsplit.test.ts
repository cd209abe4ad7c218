// Netsplit and netjoin between real servers (issue 5): links are split and healed while messages flow
// (a server's s2s cut and restored twice, a replica process restarted, the primary process restarted),
// then every user who stayed must have received every message exactly once, live or as catch-up, and
// the history of the primary and of each replica must hold the same messages, none missing or repeated.
// The faults are unannounced and the link timings are the defaults: nobody waits for a gateway to
// notice a split or a heal before talking; afterwards each user's messages are awaited, bounded.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import xml from "@xmpp/xml";
import pg from "pg";
import type { TestClient } from "../support/client.js";
import { startFederation, type Federation } from "../support/federation.js";

const ROOM = "wallops@dmuc.avalon.test";
const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";

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
  { nick: "WiZ", user: "squit", server: "eris", via: "dmuc.eris.test", log: [] },
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
    const message = await who.client!.waitFor(isRoomMessage, 40_000, `${who.nick}: ${bodies.filter((b) => !who.log.includes(b)).join(", ")}`);
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
    const rows = await client.query<{ body: string }>(
      `SELECT h.body FROM history_messages h JOIN rooms r ON r.id = h.room_id WHERE r.jid = $1 ORDER BY h.id`,
      [ROOM],
    );
    return rows.rows.map((r) => r.body);
  } finally {
    await client.end();
  }
}

describe("netsplit and netjoin across real servers", () => {
  let fed: Federation;

  before(async () => {
    fed = await startFederation({
      servers: [
        { name: "avalon", gateway: true },
        { name: "oulubox", gateway: true },
        { name: "eris", gateway: true },
      ],
      env: process.env.TRACE_GATEWAYS ? { DMUC_XMPP_DEBUG: "true" } : {},
    });
  });
  after(() => fed?.stop());

  it("sets up the room with users behind two replicas", async () => {
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
          xml("field", { var: "muc#roomconfig_historylength" }, xml("value", {}, "100")),
        );
        await p.client.request(xml("iq", { type: "set", to: ROOM, id: "cfg" }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, form)), 20_000);
      }
    }
    for (const p of people) await say(p.nick, `calm ${p.nick}`);
    await everyoneHasEverything();
  });

  for (const round of [1, 2]) {
    it(`keeps both sides talking through an s2s split of oulubox, and merges them at netjoin (round ${round})`, async () => {
      await fed.stopS2s("oulubox");
      // Talk at once, from both sides: the cut may not have set in yet for the first stanzas.
      await say("Owner", `split ${round}: the owner talks`);
      await say("WiZ", `split ${round}: WiZ answers from eris`);
      await say("Wumpus", `split ${round}: Wumpus talks to Valdis on oulubox`);
      await receive(person("Valdis"), [`split ${round}: Wumpus talks to Valdis on oulubox`]);
      await receive(person("Owner"), [`split ${round}: WiZ answers from eris`]);

      await fed.startS2s("oulubox");
      await everyoneHasEverything();
    });
  }

  it("goes on when a replica process restarts: what its user missed meanwhile comes at netjoin", async () => {
    const restarting = fed.restartGateway("eris");
    await say("Owner", "while eris's replica restarts");
    await restarting;
    // The restarted replica restores its copy of the room from its database and asks for netjoin.
    await say("WiZ", "eris's replica is back");
    await everyoneHasEverything();
  });

  it("goes on when the primary process restarts: links restored, split replicas resync", async () => {
    await fed.restartGateway("avalon");
    // Replicas that saw the room go away while it restarted hold their users' messages, and hand
    // them over at netjoin.
    for (const p of people) await say(p.nick, `after the primary restart: ${p.nick}`);
    await everyoneHasEverything();
  });

  it("delivered every message exactly once to everyone who stayed, and every history holds them all once", async () => {
    for (const p of people) {
      for (const extra of (await p.client!.drain(p.via)).filter(isRoomMessage)) p.log.push(extra.getChildText("body")!);
      const counts = new Map<string, number>();
      for (const body of p.log) counts.set(body, (counts.get(body) ?? 0) + 1);
      assert.deepEqual([...counts.entries()].filter(([, n]) => n !== 1), [], `${p.nick} got a message more than once`);
      assert.deepEqual([...counts.keys()].sort(), [...sent].sort(), `${p.nick} got every message`);
    }
    for (const server of ["avalon", "oulubox", "eris"]) {
      const bodies = await historyBodies(fed.server(server).db!.url);
      assert.deepEqual([...bodies].sort(), [...sent].sort(), `the history on ${server}`);
    }
  });
});
