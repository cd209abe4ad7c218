// Issue 14 end to end: the same room traffic through the gateway on two real Prosody servers, one with
// plugins/prosody/mod_dmuc_multicast.lua loaded (the gateway discovers it and multicasts the copies for
// the server's users) and one without (one copy per recipient, serialised once and spliced). Every
// client must receive exactly the same stanzas on both.
//
//   npx tsc -p . && node --test dist/test/e2e/multicast.test.js
import assert from "node:assert/strict";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import xml, { type Element } from "@xmpp/xml";
import type { TestClient } from "../support/client.js";
import { startStack, type Stack } from "../support/gateway.js";
import { canonicalXml } from "../support/canonical.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const PLUGIN_DIR = join(ROOT, "plugins", "prosody");
const DOMAIN = "conference.localhost";
const ROOM = `fan@${DOMAIN}`;
const WAIT_MS = 20_000;
const NS_MUC = "http://jabber.org/protocol/muc";
const NS_MUC_USER = "http://jabber.org/protocol/muc#user";
const BODY = `hello <all> & "everyone" 'here' é 💬`;

/** Who receives, by name: two sessions of bob's account share his nick. */
const USERS = [
  { name: "alice", user: "alice", resource: "phone", nick: "Alice" },
  { name: "bob1", user: "bob", resource: "desk", nick: "Bob" },
  { name: "bob2", user: "bob", resource: "laptop", nick: "Bob" },
  { name: "carol", user: "carol", resource: "tablet", nick: "Carol" },
] as const;

const fromRoom = (el: Element): boolean => (el.attrs.from ?? "").split("/")[0] === ROOM;
const isSubject = (el: Element): boolean => el.name === "message" && el.getChild("subject") !== undefined && el.getChild("body") === undefined;
const codes = (el: Element): string[] => (el.getChild("x", NS_MUC_USER)?.getChildren("status") ?? []).map((s) => s.attrs.code!);

/**
 * A received stanza as comparable text, with what differs between two gateways by design masked: ids
 * the gateway draws (stanza-id, occupant-id, message ids) and timestamps.
 */
const comparable = (el: Element): string =>
  canonicalXml(el, (name, value, depth) => (name === "stamp" ? "STAMP" : name === "id" && !(depth === 0 && value === "m1") ? "ID" : value));

/** Runs the scenario on one stack and returns, per user, every stanza it got from the room. */
async function scenario(stack: Stack): Promise<Map<string, string[]>> {
  const clients = new Map<string, TestClient>();
  const got = new Map<string, Element[]>();
  for (const u of USERS) {
    const c = await stack.connect(u.user, u.resource);
    await c.sendPresence();
    clients.set(u.name, c);
    got.set(u.name, []);
  }
  const wait = async (name: string, predicate: (el: Element) => boolean, what: string): Promise<Element> => {
    const el = await clients.get(name)!.waitFor((e) => fromRoom(e) && predicate(e), WAIT_MS, `${name}: ${what}`);
    got.get(name)!.push(el);
    return el;
  };
  const everyone = (names: readonly string[], predicate: (el: Element) => boolean, what: string) => Promise.all(names.map((n) => wait(n, predicate, what)));

  // alice creates an instant room.
  const alice = clients.get("alice")!;
  await alice.send(xml("presence", { to: `${ROOM}/Alice` }, xml("x", { xmlns: NS_MUC })));
  await wait("alice", (el) => el.name === "presence" && codes(el).includes("201"), "the new room");
  await alice.request(xml("iq", { type: "set", to: ROOM }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, xml("x", { xmlns: "jabber:x:data", type: "submit" }))), WAIT_MS);
  const inside: string[] = ["alice"];
  for (const u of USERS.slice(1)) {
    await clients.get(u.name)!.send(xml("presence", { to: `${ROOM}/${u.nick}` }, xml("x", { xmlns: NS_MUC }, xml("history", { maxstanzas: "0" }))));
    await wait(u.name, isSubject, "the subject");
    inside.push(u.name);
  }
  // Everyone has seen carol arrive (the last to enter) before the message.
  await everyone(["alice", "bob1", "bob2"], (el) => el.name === "presence" && el.attrs.from === `${ROOM}/Carol`, "carol's presence");

  await alice.send(xml("message", { to: ROOM, type: "groupchat", id: "m1" }, xml("body", {}, BODY)));
  await everyone(inside, (el) => el.getChildText("body") === BODY, "the message");

  await clients.get("bob1")!.send(xml("presence", { to: `${ROOM}/Bob` }, xml("show", {}, "away"), xml("status", {}, "<back> & 'soon'")));
  await everyone(inside, (el) => el.name === "presence" && el.attrs.from === `${ROOM}/Bob` && el.getChildText("show") === "away", "bob away");

  await clients.get("carol")!.send(xml("presence", { to: `${ROOM}/Carol`, type: "unavailable" }));
  await everyone(inside, (el) => el.name === "presence" && el.attrs.from === `${ROOM}/Carol` && el.attrs.type === "unavailable", "carol leaving");

  // Whatever else came from the room (each client's own server answers a ping after it).
  const result = new Map<string, string[]>();
  for (const [name, c] of clients) {
    const rest = (await c.drain()).filter(fromRoom);
    result.set(name, [...got.get(name)!, ...rest].map((el) => comparable(el)).sort());
  }
  return result;
}

describe("multicast through the server gives every client the same stanzas", () => {
  let plain: Stack;
  let multicast: Stack;

  before(async () => {
    plain = await startStack({ domain: DOMAIN });
    multicast = await startStack({
      domain: DOMAIN,
      prosody: { extraModules: ["dmuc_multicast"], pluginPaths: [PLUGIN_DIR], extraConfig: `dmuc_multicast_component = "${DOMAIN}"` },
    });
  });

  after(async () => {
    await plain?.stop();
    await multicast?.stop();
  });

  it("every client receives the same stanzas with and without multicast", async () => {
    const without = await scenario(plain);
    const withMulticast = await scenario(multicast);
    for (const u of USERS) {
      assert.ok(without.get(u.name)!.length >= 4, `${u.name} received ${without.get(u.name)!.length} stanzas`);
      assert.deepEqual(withMulticast.get(u.name), without.get(u.name), `what ${u.name} received`);
    }
    // The server did fan the copies out itself (its log, at debug level, names each multicast).
    assert.match(multicast.prosody.readLog(), /multicast message from fan@conference\.localhost\/Alice delivered to 4 recipients/);
    assert.doesNotMatch(plain.prosody.readLog(), /multicast .* delivered/);
  });
});
