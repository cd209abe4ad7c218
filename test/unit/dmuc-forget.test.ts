// Issue 16 point 4: a replica forgets a room none of its users is in (after a grace, telling the
// primary with <unreplicate/>), the primary drops that link (or refuses while the domain's users are
// in), and a remote domain may hold only so many links on the primary. Pure MucService, no IO.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { emptyServiceState, MucService, type ServiceState } from "../../src/core/service.js";
import { createPlugins } from "../../plugins/index.js";
import { withLink } from "../../src/core/dmuc/dmuc-state.js";
import { FORGET_GRACE_MS } from "../../src/core/dmuc/replica-forget.js";
import { MAX_LINKS_PER_DOMAIN } from "../../src/core/dmuc/primary-unreplicate.js";
import { RoomDriver, to } from "../helpers/room-driver.js";
import { assertMatches, parseXml } from "../helpers/xml.js";

const DMUC = "urn:xmpp:tmp:dmuc:0";
const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";

// ---------------------------------------------------------------------------------------------------
// The replica: dmuc.oulubox.test serves oulubox.test's users in wallops@channel.avalon.test.

const REMOTE_ROOM = "wallops@channel.avalon.test";
const REPLICA = "dmuc.oulubox.test";
const LOCAL = "oulubox.test";
const RUBENRO = "rubenro@oulubox.test/shaver";

/** A linked copy with RUBENRO in it (keepalive long enough that no probe runs during the test). */
function replicaWithUser(): RoomDriver {
  const d = new RoomDriver(REPLICA, [], { localDomain: LOCAL });
  const check = to(d.send(`<iq type='set' id='r1' from='${REMOTE_ROOM}' to='${REPLICA}'><replicate xmlns='${DMUC}' domain='${LOCAL}' keepalive='600' history='50'/></iq>`), LOCAL)[0]!;
  d.send(`<iq type='result' id='${check.attrs.id}' from='${LOCAL}' to='${REPLICA}'><directed xmlns='${DMUC}' present='true'/></iq>`);
  d.send(`<iq type='set' id='s1' from='${REMOTE_ROOM}' to='${REPLICA}'><state xmlns='${DMUC}' last='true'><config whois='moderators' presencebroadcast='moderator participant visitor'/></state></iq>`);
  d.send(`<presence from='${REMOTE_ROOM}/BigCheese' to='${REPLICA}'><x xmlns='${MUC_USER}'><item affiliation='none' role='participant'/></x></presence>`);
  const [query] = d.send(`<iq type='set' id='e1' from='${REMOTE_ROOM}' to='${REPLICA}'><enter xmlns='${DMUC}' jid='${RUBENRO}' nick='BigCheese'/></iq>`);
  d.send(`<iq type='result' id='${query!.attrs.id}' from='${LOCAL}' to='${REPLICA}'><directed xmlns='${DMUC}' present='true'/></iq>`);
  assert.equal(d.state.dmuc.replicated.get(REMOTE_ROOM)?.local.size, 1);
  return d;
}

const leave = (d: RoomDriver) => d.send(`<iq type='set' id='l1' from='${REMOTE_ROOM}' to='${REPLICA}'><leave xmlns='${DMUC}' jid='${RUBENRO}'/></iq>`);
const unreplicates = (out: Element[]) => to(out, REMOTE_ROOM).filter((s) => s.name === "iq" && s.getChild("unreplicate", DMUC));

test("replica: the last local user leaves; after the grace the replica tells the primary, and on its answer forgets the copy and its row", () => {
  const d = replicaWithUser();
  leave(d);
  assert.deepEqual(unreplicates(d.advance(FORGET_GRACE_MS - 2_000)), [], "nothing during the grace");
  const [ask] = unreplicates(d.advance(3_000));
  assertMatches(ask!, parseXml(`<iq type='set' from='${REPLICA}' to='${REMOTE_ROOM}'><unreplicate xmlns='${DMUC}'/></iq>`));
  assert.ok(d.state.dmuc.replicated.has(REMOTE_ROOM), "kept until the primary answers");
  d.send(`<iq type='result' id='${ask!.attrs.id}' from='${REMOTE_ROOM}' to='${REPLICA}'/>`);
  assert.equal(d.state.dmuc.replicated.has(REMOTE_ROOM), false);
  assert.ok(d.effects.some((e) => e.kind === "store" && e.write.op === "room.delete" && e.write.roomJid === REMOTE_ROOM), "its row goes too");
  // Nothing is pinged or kept any more; the room's broadcasts are refused as from an unregistered room.
  assert.deepEqual(to(d.advance(700_000), REMOTE_ROOM), []);
  const [refused] = d.send(`<message from='${REMOTE_ROOM}/Wumpus' to='${REPLICA}' type='groupchat'><body>anyone?</body></message>`);
  assert.equal(refused!.attrs.type, "error");
});

test("replica: a user back within the grace keeps the copy; a primary that says conflict keeps it too, and is asked again after another grace", () => {
  const d = replicaWithUser();
  leave(d);
  d.advance(FORGET_GRACE_MS / 2);
  const [query] = d.send(`<iq type='set' id='e2' from='${REMOTE_ROOM}' to='${REPLICA}'><enter xmlns='${DMUC}' jid='${RUBENRO}' nick='BigCheese'/></iq>`);
  d.send(`<iq type='result' id='${query!.attrs.id}' from='${LOCAL}' to='${REPLICA}'><directed xmlns='${DMUC}' present='true'/></iq>`);
  assert.deepEqual(unreplicates(d.advance(FORGET_GRACE_MS * 2)), [], "not while a user is in");

  leave(d);
  const [ask] = unreplicates(d.advance(FORGET_GRACE_MS + 2_000));
  d.send(`<iq type='error' id='${ask!.attrs.id}' from='${REMOTE_ROOM}' to='${REPLICA}'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
  assert.ok(d.state.dmuc.replicated.has(REMOTE_ROOM), "kept");
  assert.deepEqual(unreplicates(d.advance(FORGET_GRACE_MS - 2_000)), [], "not again before another grace");
  assert.equal(unreplicates(d.advance(4_000)).length, 1);
});

// ---------------------------------------------------------------------------------------------------
// The primary: dmuc.avalon.test, Wumpus from oulubox.test served through the replica dmuc.oulubox.test.

const SERVICE = "dmuc.avalon.test";
const ROOM = `wallops@${SERVICE}`;
const WUMPUS = "argl@oulubox.test/laptop";
const OWNER = "owner@avalon.test/home";

class Primary {
  readonly service = new MucService(
    { domain: SERVICE, admins: new Set(), name: "t", localDomain: "avalon.test" },
    createPlugins({ maxHistoryMessages: 20, maxBodyChars: 1000, ratePerSecond: 100, burst: 1000 }),
  );
  state: ServiceState = emptyServiceState();
  now = 1_000_000;
  private ids = 0;

  send(text: string): Element[] {
    const outcome = this.service.handle(this.state, parseXml(text), { now: new Date(this.now), newId: () => `id${++this.ids}` });
    this.state = outcome.state;
    return outcome.effects.flatMap((e) => (e.kind === "send" ? [e.stanza] : []));
  }
}

const sentTo = (stanzas: Element[], jid: string) => stanzas.filter((s) => s.attrs.to === jid);

/** Creates `room` with its owner and lets Wumpus enter; returns what went to the replica and the domain. */
function enterWumpus(p: Primary, room: string): Element[] {
  if (!p.state.rooms.has(room)) {
    p.send(`<presence from='${OWNER}' to='${room}/Owner'><x xmlns='${MUC}'/></presence>`);
    p.send(`<iq from='${OWNER}' to='${room}' id='c' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
  }
  return p.send(`<presence from='${WUMPUS}' to='${room}/Wumpus'><x xmlns='${MUC}'/></presence>`);
}

/** The room linked to the replica with Wumpus moved onto it (discovery, replicate, state, ENTER answered). */
function linkedPrimary(): Primary {
  const p = new Primary();
  const [items] = sentTo(enterWumpus(p, ROOM), "oulubox.test");
  const [info] = p.send(`<iq type='result' id='${items!.attrs.id}' from='oulubox.test' to='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#items'><item jid='${REPLICA}'/></query></iq>`);
  const [replicate] = p.send(`<iq type='result' id='${info!.attrs.id}' from='${REPLICA}' to='${SERVICE}'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='dmuc-replica'/><feature var='${DMUC}'/></query></iq>`);
  const sync = p.send(`<iq type='result' id='${replicate!.attrs.id}' from='${REPLICA}' to='${ROOM}'><replicate xmlns='${DMUC}' domain='oulubox.test' keepalive='30' history='10'/></iq>`);
  for (const iq of sync) p.send(`<iq type='result' id='${iq.attrs.id}' from='${REPLICA}' to='${ROOM}'/>`);
  assert.deepEqual([...p.state.dmuc.links.get(ROOM)!.get(REPLICA)!.members], [WUMPUS]);
  return p;
}

test("primary: <unreplicate/> while the domain's users are in is refused with conflict; once they left, the link is dropped and made again at the next entry", () => {
  const p = linkedPrimary();
  const [conflict] = p.send(`<iq type='set' id='u1' from='${REPLICA}' to='${ROOM}'><unreplicate xmlns='${DMUC}'/></iq>`);
  assertMatches(conflict!, parseXml(`<iq type='error' id='u1' from='${ROOM}' to='${REPLICA}'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));
  assert.ok(p.state.dmuc.links.get(ROOM)?.has(REPLICA));

  p.send(`<presence from='${WUMPUS}' to='${ROOM}/Wumpus' type='unavailable'/>`);
  const [ok] = p.send(`<iq type='set' id='u2' from='${REPLICA}' to='${ROOM}'><unreplicate xmlns='${DMUC}'/></iq>`);
  assertMatches(ok!, parseXml(`<iq type='result' id='u2' from='${ROOM}' to='${REPLICA}'/>`));
  assert.equal(p.state.dmuc.links.get(ROOM)?.has(REPLICA) ?? false, false, "the link is gone");
  // A message now reaches nobody on the replica.
  assert.deepEqual(sentTo(p.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>hello?</body></message>`), REPLICA), []);
  // Wumpus comes back: the replica is asked again, from the start.
  const again = sentTo(enterWumpus(p, ROOM), REPLICA);
  assert.ok(again.some((s) => s.getChild("replicate", DMUC)), "replicate again");
});

test("primary: a remote domain holds at most MAX_LINKS_PER_DOMAIN links; past it, its users are plain occupants", () => {
  const p = linkedPrimary();
  const link = p.state.dmuc.links.get(ROOM)!.get(REPLICA)!;
  let dmuc = p.state.dmuc;
  for (let i = 1; i < MAX_LINKS_PER_DOMAIN; i++) dmuc = withLink(dmuc, `filler${i}@${SERVICE}`, link);
  p.state = { ...p.state, dmuc };
  const out = enterWumpus(p, `one-more@${SERVICE}`);
  assert.deepEqual(sentTo(out, REPLICA).filter((s) => s.getChild("replicate", DMUC)), [], "no new link");
  assert.ok(sentTo(out, WUMPUS).some((s) => s.name === "presence"), "served directly");
  assert.equal(p.state.dmuc.links.has(`one-more@${SERVICE}`), false);
});
