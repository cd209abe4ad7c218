// XEP-0282's own scenario between separately running servers: the room on avalon, its users on three
// DMUC2 servers (each with a gateway as replica and mod_dmuc_replica), and then a mixed room with a
// server that runs no gateway. Counts what crosses s2s: one copy of a broadcast per replica server,
// plus one per occupant on a plain server.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import { stanza, type TestClient } from "../support/client.js";
import { startFederation, type Federation } from "../support/federation.js";
import { startGatewayProcess } from "../support/gateway.js";

const ROOM = "wallops@dmuc.avalon.test";
const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";
const MUC_OWNER = "http://jabber.org/protocol/muc#owner";

interface Person {
  nick: string;
  user: string;
  server: string;
  client?: TestClient;
}

const PEOPLE: Person[] = [
  { nick: "Wumpus", user: "argl", server: "oulubox" },
  { nick: "Valdis", user: "valdis", server: "oulubox" },
  { nick: "Phaedrus", user: "phaedrus", server: "oulubox" },
  { nick: "WiZ", user: "squit", server: "eris" },
  { nick: "Troy", user: "troy", server: "eris" },
  { nick: "BigCheese", user: "rubenro", server: "vesa" },
  { nick: "Efchen", user: "msa", server: "vesa" },
];
const REPLICA_SERVERS = ["oulubox", "eris", "vesa"];

const groupchat = (body: string): Element => xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, body));
const join = (nick: string): Element => xml("presence", { to: `${ROOM}/${nick}` }, xml("x", { xmlns: MUC }));

describe("DMUC2 between four servers (XEP-0282's scenario), then with a plain server", () => {
  let fed: Federation;
  const client = (nick: string) => PEOPLE.find((p) => p.nick === nick)!.client!;

  async function enter(person: Person): Promise<void> {
    person.client = await fed.connect(person.user, person.server);
    await person.client.sendPresence();
    await person.client.send(join(person.nick));
    const self = await person.client.waitFor(
      (el) => el.name === "presence" && el.attrs.from === `${ROOM}/${person.nick}` && !!el.getChild("x", MUC_USER)?.getChildren("status").some((s) => s.attrs.code === "110"),
      20_000,
      `${person.nick}'s own presence`,
    );
    assert.ok(self);
    await person.client.waitFor(stanza("message", { from: ROOM, type: "groupchat" }, { name: "subject" }), 20_000, `${person.nick}'s subject`).catch(async () => {
      // The subject comes from room/nick once someone set it.
      await person.client!.waitFor((el) => el.name === "message" && !!el.getChild("subject"), 20_000);
    });
  }

  async function linkActive(server: string): Promise<void> {
    await fed.server("avalon").gateway!.waitForEvent("dmuc.link_active", (e) => e.replica === `dmuc.${server}.test` && e.room === ROOM, 30_000);
  }

  before(async () => {
    fed = await startFederation({
      servers: [
        { name: "avalon", gateway: true },
        { name: "oulubox", gateway: true },
        { name: "eris", gateway: true },
        { name: "vesa", gateway: true },
        { name: "plain", gateway: false },
      ],
    });
  });
  after(() => fed?.stop());

  it("creates the room and links one replica per server as their first users enter", async () => {
    const wumpus = PEOPLE[0]!;
    await enter(wumpus);
    const owner = wumpus.client!;
    await owner.request(xml("iq", { type: "set", to: ROOM, id: "cfg" }, xml("query", { xmlns: MUC_OWNER }, xml("x", { xmlns: "jabber:x:data", type: "submit" }))), 20_000);
    await linkActive("oulubox");
    for (const first of ["WiZ", "BigCheese"]) {
      const person = PEOPLE.find((p) => p.nick === first)!;
      await enter(person);
      await linkActive(person.server);
    }
  });

  it("lets everyone else enter through their replica, each seeing the whole room", async () => {
    for (const person of PEOPLE.filter((p) => !p.client)) await enter(person);
    const last = PEOPLE[PEOPLE.length - 1]!;
    // The last to enter got everybody's presence from its replica before its own.
    const seen = new Set(last.client!.inbox().filter((el) => el.name === "presence").map((el) => el.attrs.from));
    for (const person of PEOPLE) if (person !== last) assert.ok(seen.has(`${ROOM}/${person.nick}`), `${last.nick} saw ${person.nick}`);
    const primaryEvents = fed.server("avalon").gateway!.events();
    assert.ok(!primaryEvents.some((e) => e.event === "dmuc.session_direct"), "no ENTER was refused");
  });

  it("sends a groupchat message once per replica server over s2s, and everyone gets it with one stanza-id", async () => {
    for (const person of PEOPLE) await person.client!.drain();
    await fed.resetS2sCounts();
    await client("Wumpus").send(groupchat("Phaedrus, we're all having a truly rotten time."));
    const ids = new Set<string>();
    for (const person of PEOPLE) {
      const message = await person.client!.waitFor(stanza("message", { from: `${ROOM}/Wumpus`, type: "groupchat" }), 20_000, `${person.nick}'s copy`);
      assert.equal(message.getChildText("body"), "Phaedrus, we're all having a truly rotten time.");
      assert.equal(message.getChild("x", "urn:xmpp:tmp:dmuc:0"), undefined, "the replica removes the dmuc element");
      ids.add(message.getChild("stanza-id", "urn:xmpp:sid:0")!.attrs.id!);
    }
    assert.equal(ids.size, 1);
    const counts = await fed.s2sCounts();
    assert.equal(counts.sum({ from: "dmuc.avalon.test" }).message, REPLICA_SERVERS.length, JSON.stringify(counts.pairs));
    for (const server of REPLICA_SERVERS) assert.equal(counts.between("dmuc.avalon.test", `dmuc.${server}.test`).message, 1);
  });

  it("broadcasts a presence change once per replica server", async () => {
    await fed.resetS2sCounts();
    await client("BigCheese").send(xml("presence", { to: `${ROOM}/BigCheese` }, xml("show", {}, "away")));
    for (const person of PEOPLE) {
      await person.client!.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/BigCheese` && el.getChildText("show") === "away", 20_000, `${person.nick} sees BigCheese away`);
    }
    const counts = await fed.s2sCounts();
    assert.equal(counts.sum({ from: "dmuc.avalon.test" }).presence, REPLICA_SERVERS.length, JSON.stringify(counts.pairs));
  });

  it("lets an occupant leave: it gets its own unavailable presence, the others see it go", async () => {
    const efchen = client("Efchen");
    await efchen.send(xml("presence", { to: `${ROOM}/Efchen`, type: "unavailable" }));
    const own = await efchen.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/Efchen` && el.attrs.type === "unavailable", 20_000);
    assert.ok(own.getChild("x", MUC_USER)!.getChildren("status").some((s) => s.attrs.code === "110"));
    for (const person of PEOPLE.filter((p) => p.nick !== "Efchen")) {
      await person.client!.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/Efchen` && el.attrs.type === "unavailable", 20_000, `${person.nick} sees Efchen go`);
    }
    PEOPLE.find((p) => p.nick === "Efchen")!.client = undefined;
    await efchen.stop();
  });

  it("serves a user of a server without a gateway directly, in the same room: one copy per plain occupant", async () => {
    const loner = await fed.connect("loner", "plain");
    await loner.sendPresence();
    await loner.send(join("Loner"));
    await loner.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/Loner`, 20_000);
    await fed.server("avalon").gateway!.waitForEvent("dmuc.domain", (e) => e.domain === "plain.test" && e.replica === null, 30_000);
    for (const person of PEOPLE) if (person.client) await person.client.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/Loner`, 20_000);
    await fed.resetS2sCounts();
    await client("WiZ").send(groupchat("mixed"));
    const ids = new Set<string>();
    for (const c of [...PEOPLE.flatMap((p) => (p.client ? [p.client] : [])), loner]) {
      const message = await c.waitFor(stanza("message", { from: `${ROOM}/WiZ`, type: "groupchat" }), 20_000);
      ids.add(message.getChild("stanza-id", "urn:xmpp:sid:0")!.attrs.id!);
    }
    assert.equal(ids.size, 1, "the same stanza-id on both paths");
    const counts = await fed.s2sCounts();
    assert.equal(counts.between("dmuc.avalon.test", "plain.test").message, 1);
    assert.equal(counts.sum({ from: "dmuc.avalon.test" }).message, REPLICA_SERVERS.length + 1, JSON.stringify(counts.pairs));
    await loner.stop();
  });

  it("lists the links with their state on the operator's command line (dmuc-gateway links)", async () => {
    const avalon = fed.server("avalon");
    const cli = await startGatewayProcess({ env: avalon.env!, args: ["links", "--json"] });
    assert.equal((await cli.waitForExit()).code, 0, cli.readLog());
    const rows = JSON.parse(cli.readStdout()) as { room: string; role: string; peer: string; state: string }[];
    await cli.stop();
    assert.deepEqual(
      rows.map((r) => `${r.room} ${r.role} ${r.peer} ${r.state}`).sort(),
      REPLICA_SERVERS.map((s) => `${ROOM} primary dmuc.${s}.test active`).sort(),
    );
  });
});
