// Service options end to end (issue 10): tombstones of destroyed persistent rooms survive a gateway
// restart and answer entries with <gone/> and the new venue. The gateway runs with room creation
// restricted to local users (who still create rooms) and persistent rooms by default (the destroyed
// room was never configured as persistent). Real @xmpp/client users on a real Prosody, the built
// gateway, a real PostgreSQL.
//
//   npx tsc -p . && node --test dist/test/e2e/service-options.test.js
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import pg from "pg";
import type { TestClient } from "../support/client.js";
import { startStack, type Stack } from "../support/gateway.js";

const DOMAIN = "conference.localhost";
const WAIT_MS = 10_000;
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const bare = (jid: string | undefined): string => (jid ?? "").split("/")[0]!;

/** Enters and returns the room's answer: the error presence, or the subject that ends an entry. */
async function tryEnter(client: TestClient, room: string, nick: string): Promise<Element> {
  await client.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })));
  for (;;) {
    const el = await client.waitFor((e) => bare(e.attrs.from) === room, WAIT_MS, `the answer of ${room}`);
    if (el.name === "presence" && el.attrs.type === "error") return el;
    if (el.name === "message" && el.getChild("subject")) return el;
  }
}

function owner(client: TestClient, room: string, payload: Element): Promise<Element> {
  return client.request(xml("iq", { type: "set", to: room }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, payload)), WAIT_MS);
}

describe("service options (real Prosody, gateway restarted)", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ env: { DMUC_ROOM_CREATION: "local", DMUC_ROOM_DEFAULT_PERSISTENT: "true" } });
  });
  after(async () => {
    await stack?.stop();
  });

  it("a destroyed persistent room answers entries with <gone/> and its new venue, also after a restart", async () => {
    const id = randomBytes(4).toString("hex");
    const room = `heath-${id}@${DOMAIN}`;
    const venue = `coven-${id}@${DOMAIN}`;
    const crone = await stack.connect("crone", "desktop");
    const created = await tryEnter(crone, room, "firstwitch");
    assert.notEqual(created.attrs.type, "error");
    await owner(crone, room, xml("x", { xmlns: "jabber:x:data", type: "submit" }));
    await owner(crone, room, xml("destroy", { jid: venue }, xml("reason", {}, "Macbeth doth come.")));

    const client = new pg.Client({ connectionString: stack.db.url });
    await client.connect();
    try {
      const { rows } = await client.query("SELECT jid, alternate_venue, reason FROM room_tombstones");
      assert.deepEqual(rows, [{ jid: room, alternate_venue: venue, reason: "Macbeth doth come." }]);
    } finally {
      await client.end();
    }

    await stack.restartGateway();
    const hag = await stack.connect("hag66", "pda");
    const gone = await tryEnter(hag, room, "thirdwitch");
    const error = gone.getChild("error")!;
    assert.equal(error.attrs.type, "cancel", gone.toString());
    assert.equal(error.getChildText("gone", STANZAS), `xmpp:${venue}?join`);
    assert.equal(error.getChildText("text", STANZAS), "Macbeth doth come.");
  });
});
