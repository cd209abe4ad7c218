// docs/dmuc.xsd describes what the gateway really sends: every wire builder's output validates against
// it (with xmllint, from Debian's libxml2-utils; skipped where it is not installed).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import xml from "@xmpp/xml";
import * as wire from "../../src/core/dmuc/wire.js";

const SCHEMA = fileURLToPath(new URL("../../../docs/dmuc.xsd", import.meta.url));
const hasXmllint = spawnSync("xmllint", ["--version"]).status === 0;

const presence = xml("presence", { xmlns: "jabber:client", from: "wallops@dmuc.avalon.test/Wumpus" }, xml("x", { xmlns: "http://jabber.org/protocol/muc#user" }, xml("item", { role: "moderator", affiliation: "owner" })));
const message = xml("message", { xmlns: "jabber:client", from: "argl@oulubox.test/laptop", to: "wallops@dmuc.avalon.test", type: "groupchat" }, xml("body", {}, "hi"));
const config = { whois: "moderators" as const, presenceBroadcast: ["moderator" as const, "participant" as const], splitChat: false };

const samples = {
  replicate: wire.buildReplicate({ domain: "oulubox.test", keepaliveSeconds: 60, historyLimit: 20 }),
  state: wire.buildState({ last: true, config, presences: [presence], history: [message], subject: { text: "war", nick: "Wumpus", at: new Date(0) } }),
  enter: wire.buildEnter({ jid: "rubenro@oulubox.test/shaver", nick: "BigCheese", silent: true, history: xml("history", { xmlns: "http://jabber.org/protocol/muc", maxstanzas: "5" }), codes: [201] }),
  leave: wire.buildLeave({ jid: "rubenro@oulubox.test/shaver", presence }),
  delay: wire.buildBroadcastDelay("wallops@dmuc.avalon.test", new Date(0), "m1"),
  netjoin: wire.buildNetjoin({ since: new Date(0), config, presences: [presence], history: [message], subject: null, served: new Map([["sid-1", new Set(["argl@oulubox.test/laptop"])]]) }),
  netjoinPaged: wire.buildNetjoin({ since: new Date(0), config, presences: [presence], history: [], subject: null, served: new Map(), after: "Zq1-x_2" }),
  answer: wire.buildNetjoinAnswer({ occupants: [{ jid: "argl@oulubox.test/laptop", nick: "Wumpus" }], messages: [message], kicks: [{ jid: "msa@oulubox.test/bicycle", nick: "Efchen", actor: "argl@oulubox.test/laptop", reason: "flood" }, { jid: "x@oulubox.test/r", nick: "X", actor: "argl@oulubox.test/laptop" }] }),
  resync: wire.buildResync(),
  catchupFirst: wire.buildCatchUpRequest({ since: new Date(0), after: null }),
  catchupNext: wire.buildCatchUpRequest({ since: new Date(0), after: "Zq1-x_2" }),
  catchupPage: wire.buildCatchUpPage({ messages: [message], complete: false, served: new Map([["sid-1", new Set(["argl@oulubox.test/laptop"])]]) }),
  catchupLast: wire.buildCatchUpPage({ messages: [], complete: true, served: new Map() }),
  relay: wire.buildRelay(message),
  divert: wire.buildDivert("wallops@dmuc.avalon.test"),
  undivert: wire.buildDivert("wallops@dmuc.avalon.test", false),
  taken: wire.buildTaken({ stream: "c1", seq: 7 }),
  directed: wire.buildDirectedQuery("argl@oulubox.test/laptop", "wallops@dmuc.avalon.test"),
  answered: wire.buildDirectedAnswer(true),
  header: wire.buildLinkHeader({ stream: "Zq1-x_2", seq: 3, ack: 2, acked: "s2", probe: false }),
  probe: wire.buildLinkHeader({ probe: true }),
  submit: wire.buildSubmit({ stanza: message, at: new Date(0) }),
};

test("every DMUC2 wire element the gateway builds validates against docs/dmuc.xsd", { skip: hasXmllint ? false : "xmllint is not installed" }, () => {
  const dir = mkdtempSync(join(tmpdir(), "dmuc-xsd-"));
  try {
    for (const [name, element] of Object.entries(samples)) {
      const file = join(dir, `${name}.xml`);
      writeFileSync(file, element.toString());
      assert.doesNotThrow(() => execFileSync("xmllint", ["--noout", "--schema", SCHEMA, file], { stdio: "pipe" }), `${name}: ${element.toString()}`);
    }
    const bad = join(dir, "bad.xml");
    writeFileSync(bad, `<enter xmlns='urn:xmpp:tmp:dmuc:0' jid='not-full@oulubox.test' nick='x'/>`);
    assert.throws(() => execFileSync("xmllint", ["--noout", "--schema", SCHEMA, bad], { stdio: "pipe" }), "a bare JID in enter is refused");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
