// Ghost occupants behind a DMUC2 replica (issue 10): the room on avalon, users of oulubox served by
// oulubox's replica. oulubox's Prosody crashes (SIGKILL: nobody is told that the sessions ended) and
// starts again; the replica's gateway reconnects, verifies the sessions it serves, finds them gone and
// reports them to the primary, which removes them as Prosody's MUC removes a session that bounces.
//
//   npx tsc -p . && node --test dist/test/e2e/dmuc-liveness.test.js
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import xml, { type Element } from "@xmpp/xml";
import type { TestClient } from "../support/client.js";
import { startFederation, type Federation } from "../support/federation.js";
import { configureRoom, enterRoom, NS_MUC_USER } from "../support/room-client.js";
import { untilLinkActive, untilServedByReplica } from "../support/rows.js";

const ROOM = "ghosts@dmuc.avalon.test";
const WAIT_MS = 30_000;
/** As for ghosts of directly served users (test/e2e/liveness.test.ts). */
const GHOSTS_GONE_MS = 60_000;
const DISCO_ITEMS = "http://jabber.org/protocol/disco#items";

/** The nicks the room lists (disco#items: the room is non-anonymous, so it lists its occupants). */
async function listed(client: TestClient): Promise<string[]> {
  const result = await client.request(xml("iq", { type: "get", to: ROOM }, xml("query", { xmlns: DISCO_ITEMS })), WAIT_MS);
  return (result.getChild("query", DISCO_ITEMS)?.getChildren("item") ?? []).map((i) => i.attrs.jid!.split("/")[1]!).sort();
}

describe("DMUC2: sessions a replica serves that are gone after their server crashed are removed", () => {
  let fed: Federation;
  before(async () => {
    fed = await startFederation({
      servers: [
        { name: "avalon", gateway: true },
        { name: "oulubox", gateway: true },
      ],
    });
  });
  after(() => fed?.stop());

  it("removes them within a minute with status 333, as for a bounce; the primary's own user stays", async () => {
    const wumpus = await fed.connect("argl", "avalon");
    await wumpus.sendPresence();
    await enterRoom(wumpus, ROOM, "Wumpus");
    await configureRoom(wumpus, ROOM, { "muc#roomconfig_whois": "anyone" });
    const phaedrus = await fed.connect("phaedrus", "oulubox");
    await phaedrus.sendPresence();
    await enterRoom(phaedrus, ROOM, "Phaedrus");
    await untilLinkActive(fed.server("avalon").db!.url, ROOM, "dmuc.oulubox.test", WAIT_MS);
    const valdis = await fed.connect("valdis", "oulubox");
    await valdis.sendPresence();
    await enterRoom(valdis, ROOM, "Valdis");
    // The replica took Valdis, as its operator sees it: its copy of the room lists his session.
    await untilServedByReplica(fed.server("oulubox").db!.url, ROOM, "valdis@oulubox.test", WAIT_MS);
    assert.deepEqual(await listed(wumpus), ["Phaedrus", "Valdis", "Wumpus"]);
    await wumpus.drain();

    // The fault, unannounced: oulubox's server crashes under its users and starts again.
    await fed.server("oulubox").prosody.restart({ crash: true });

    const deadline = Date.now() + GHOSTS_GONE_MS;
    let now: string[] = [];
    while (Date.now() < deadline) {
      now = await listed(wumpus);
      if (now.length === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    assert.deepEqual(now, ["Wumpus"], `the room's occupants ${GHOSTS_GONE_MS / 1000} s after the crash`);
    // Wumpus saw both go as sessions that bounce go (XEP-0045 §15.7: 333).
    for (const nick of ["Phaedrus", "Valdis"]) {
      const gone: Element = await wumpus.waitFor((el) => el.name === "presence" && el.attrs.from === `${ROOM}/${nick}` && el.attrs.type === "unavailable", WAIT_MS, `${nick} leaving`);
      const codes = gone.getChild("x", NS_MUC_USER)!.getChildren("status").map((s) => s.attrs.code);
      assert.deepEqual(codes, ["333"], gone.toString());
    }
    // The room goes on for those still in it.
    await wumpus.send(xml("message", { to: ROOM, type: "groupchat", id: "after" }, xml("body", {}, "anyone left?")));
    await wumpus.waitFor((el) => el.name === "message" && el.attrs.id === "after" && el.attrs.from === `${ROOM}/Wumpus`, WAIT_MS);
  });
});
