// The DMUC2 wire elements: examples of docs/PROTOCOL.md parse and build back; embedded stanzas come
// out as stanzas whatever namespace the carrying server gave them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseXml } from "../helpers/xml.js";
import { buildEnter, buildReplicate, parseEnter, parseLeave, parseNetjoinAnswer, parseReplicate, parseState, unwrapStanza } from "../../src/core/dmuc/wire.js";

const DMUC = "urn:xmpp:tmp:dmuc:0";

test("replicate and enter round-trip", () => {
  const replicate = parseReplicate(parseXml(`<replicate xmlns='${DMUC}' domain='oulubox.test' keepalive='60' history='20'/>`));
  assert.deepEqual(replicate, { domain: "oulubox.test", keepaliveSeconds: 60, historyLimit: 20 });
  assert.deepEqual(parseReplicate(buildReplicate(replicate!)), replicate);
  assert.equal(parseReplicate(parseXml(`<replicate xmlns='${DMUC}' domain='a@b' keepalive='60' history='20'/>`)), null);
  const enter = parseEnter(parseXml(`<enter xmlns='${DMUC}' jid='rubenro@oulubox.test/shaver' nick='BigCheese'><history xmlns='http://jabber.org/protocol/muc' maxstanzas='20'/><status code='201'/></enter>`));
  assert.equal(enter?.nick, "BigCheese");
  assert.deepEqual(enter?.codes, [201]);
  assert.equal(enter?.history?.attrs.maxstanzas, "20");
  assert.deepEqual(parseEnter(buildEnter(enter!))?.codes, [201]);
  assert.equal(parseEnter(parseXml(`<enter xmlns='${DMUC}' jid='not-a-full-jid@x.test' nick='n'/>`)), null);
});

test("stanzas embedded in dmuc elements come out in no namespace, their extensions untouched", () => {
  // As Prosody writes them out after parsing: the wrapper's namespace explicit on the stanza and body.
  const state = parseState(parseXml(`<state xmlns='${DMUC}' last='true'>
    <message xmlns='${DMUC}' from='r@m.test/n' type='groupchat'><body xmlns='${DMUC}'>hi</body>
      <delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:00Z'/></message></state>`));
  const message = state!.history[0]!;
  assert.equal(message.attrs.xmlns, undefined);
  assert.equal(message.getChild("body")!.attrs.xmlns, undefined);
  assert.equal(message.getChild("delay")!.attrs.xmlns, "urn:xmpp:delay");
  const leave = parseLeave(parseXml(`<leave xmlns='${DMUC}' jid='u@o.test/r'><presence xmlns='${DMUC}' type='unavailable'/></leave>`));
  assert.equal(leave!.presence!.attrs.xmlns, undefined);
  const answer = parseNetjoinAnswer(parseXml(`<netjoin xmlns='${DMUC}'><occupant jid='u@o.test/r' nick='U'/><message from='u@o.test/r' type='groupchat'><body>x</body></message></netjoin>`));
  assert.equal(answer!.messages[0]!.getChildText("body"), "x");
  assert.equal(unwrapStanza(parseXml(`<message xmlns='jabber:client'/>`)).attrs.xmlns, "jabber:client", "a stanza's own namespace is kept");
});

test("the link header and the submission round-trip; malformed headers are refused", async () => {
  const { buildLinkHeader, parseLinkHeader, buildSubmit, parseSubmit } = await import("../../src/core/dmuc/wire.js");
  const carried = (h: string) => parseXml(`<message>${h}</message>`);
  const header = { stream: "s-1", seq: 4, ack: 0, acked: "p_2", probe: false };
  assert.deepEqual(parseLinkHeader(carried(buildLinkHeader(header).toString())), header);
  assert.deepEqual(parseLinkHeader(carried(`<link xmlns='${DMUC}' probe='true'/>`)), { probe: true });
  for (const bad of [`seq='0' stream='s'`, `seq='1'`, `seq='x' stream='s'`, `ack='1'`, `acked='s'`, `stream='a b' seq='1'`, `ack='-1' acked='s'`]) {
    assert.equal(parseLinkHeader(carried(`<link xmlns='${DMUC}' ${bad}/>`)), null, bad);
  }
  const submitted = parseSubmit(parseXml(`<message>${buildSubmit({ stanza: parseXml(`<message from='u@o.test/r' to='r@m.test' type='groupchat'><body>x</body></message>`), at: new Date(5) }).toString()}</message>`));
  assert.equal(submitted!.stanza.attrs.xmlns, undefined, "the user's stanza comes out as a stanza");
  assert.equal(submitted!.stanza.getChildText("body"), "x");
  assert.equal(submitted!.at.getTime(), 5);
  assert.equal(parseSubmit(parseXml(`<message><submit xmlns='${DMUC}' stamp='never'><message/></submit></message>`)), null);
  assert.equal(parseSubmit(parseXml(`<message><submit xmlns='${DMUC}' stamp='1970-01-01T00:00:00Z'><message/><message/></submit></message>`)), null);
});

test("catchup: request and page round-trip; malformed ones are refused", async () => {
  const wire = await import("../../src/core/dmuc/wire.js");
  const since = new Date("2026-01-01T00:00:00Z");
  assert.deepEqual(wire.parseCatchUpRequest(wire.buildCatchUpRequest({ since, after: "m2" })), { since, after: "m2" });
  assert.deepEqual(wire.parseCatchUpRequest(wire.buildCatchUpRequest({ since, after: null })), { since, after: null });
  const NS = "urn:xmpp:tmp:dmuc:0";
  for (const bad of [`<catchup xmlns='${NS}'/>`, `<catchup xmlns='${NS}' since='yesterday'/>`, `<catchup xmlns='${NS}' since='2026-01-01T00:00:00Z' after=''/>`]) {
    assert.equal(wire.parseCatchUpRequest(parseXml(bad)), null, bad);
  }
  const page = wire.parseCatchUpPage(parseXml(`<catchup xmlns='${NS}' complete='false'><message xmlns='${NS}' type='groupchat'><body xmlns='${NS}'>hi</body></message></catchup>`));
  assert.equal(page?.complete, false);
  assert.equal(page?.messages[0]?.attrs.xmlns, undefined, "the carried stanza is a stanza again");
  assert.equal(page?.messages[0]?.getChildText("body"), "hi");
  assert.equal(wire.parseCatchUpPage(parseXml(`<catchup xmlns='${NS}'/>`)), null, "complete is required");
});
