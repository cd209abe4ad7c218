// Issue 16 point 8: a persistent room nobody is in keeps its history in PostgreSQL only; whoever enters
// next gets it, read back from the database, also after a restart (real Prosody, PostgreSQL, clients).
//
//   npx tsc -p . && node --test dist/test/e2e/history-on-disk.test.js
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import type { TestClient } from "../support/client.js";
import { startStack, type Stack } from "../support/gateway.js";

const DOMAIN = "conference.localhost";
const ROOM = `keep@${DOMAIN}`;
const WAIT_MS = 30_000;

/** Enters and returns the history messages received before the subject. */
async function enter(client: TestClient, nick: string): Promise<string[]> {
  await client.send(xml("presence", { to: `${ROOM}/${nick}` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })));
  const history: Element[] = [];
  for (;;) {
    const el = await client.waitFor((s) => s.name === "message" && s.attrs.from?.startsWith(ROOM) === true, WAIT_MS, `${nick}'s history and subject`);
    if (el.getChild("subject") !== undefined && el.getChild("body") === undefined) break;
    history.push(el);
  }
  return history.map((m) => m.getChildText("body")!);
}

describe("history of an empty persistent room", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ env: { DMUC_LOG_LEVEL: "info" } });
  });
  after(async () => {
    await stack?.stop();
  });

  it("is read back from the database for the next occupant, also after a restart", async () => {
    const alice = await stack.connect("alice");
    assert.deepEqual(await enter(alice, "alice"), []);
    await alice.request(
      xml("iq", { type: "set", to: ROOM }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" },
        xml("x", { xmlns: "jabber:x:data", type: "submit" },
          xml("field", { var: "FORM_TYPE" }, xml("value", {}, "http://jabber.org/protocol/muc#roomconfig")),
          xml("field", { var: "muc#roomconfig_persistentroom" }, xml("value", {}, "1"))))),
    );
    for (const body of ["one", "two", "three"]) {
      await alice.send(xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, body)));
      await alice.waitFor((el) => el.getChildText("body") === body, WAIT_MS, `the echo of ${body}`);
    }
    await alice.send(xml("presence", { to: `${ROOM}/alice`, type: "unavailable" }));
    await alice.waitFor((el) => el.name === "presence" && el.attrs.type === "unavailable", WAIT_MS, "alice's exit");

    const bob = await stack.connect("bob");
    assert.deepEqual(await enter(bob, "bob"), ["one", "two", "three"]);
    await bob.send(xml("presence", { to: `${ROOM}/bob`, type: "unavailable" }));
    await bob.waitFor((el) => el.name === "presence" && el.attrs.type === "unavailable", WAIT_MS, "bob's exit");

    await stack.restartGateway();
    const carol = await stack.connect("carol");
    assert.deepEqual(await enter(carol, "carol"), ["one", "two", "three"]);
  });
});
