// XEP-0045 §8-§10 through muc#admin (plugins/admin.ts, plugins/moderation.ts), driven through the
// pure MucService with the XEP's own examples.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { emptyServiceState, MucService, type ServiceState } from "../../src/core/service.js";
import type { Effect } from "../../src/core/effects.js";
import { createPlugins } from "../../plugins/index.js";
import { assertMatches, example, parseXml } from "../helpers/xml.js";

const DOMAIN = "chat.shakespeare.lit";
const service = new MucService({ domain: DOMAIN, admins: new Set(), name: "Chat" }, createPlugins({ maxHistoryMessages: 50, maxBodyChars: 10000, ratePerSecond: 100, burst: 100 }));

let ids = 0;
const context = { now: new Date("2026-01-01T00:00:00Z"), newId: () => `id-${++ids}` };

interface Run {
  state: ServiceState;
  effects: Effect[];
  sent: Element[];
}

function run(state: ServiceState, stanza: Element | string): Run {
  const outcome = service.handle(state, typeof stanza === "string" ? parseXml(stanza) : stanza, context);
  return { ...outcome, sent: outcome.effects.flatMap((e) => (e.kind === "send" ? [e.stanza] : [])) };
}

// example(xep, caption, n) counts examples in the fixture's key order, where numbers from 100 come first.
function to(result: Run, jid: string, name?: string): Element[] {
  return result.sent.filter((s) => s.attrs.to === jid && (name === undefined || s.name === name));
}

function one(result: Run, jid: string, name?: string): Element {
  const found = to(result, jid, name);
  assert.equal(found.length, 1, `one ${name ?? "stanza"} to ${jid}, got ${found.map((s) => s.toString()).join("\n")}`);
  return found[0]!;
}

function join(state: ServiceState, room: string, full: string, nick: string): ServiceState {
  const result = run(state, `<presence from='${full}' to='${room}@${DOMAIN}/${nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  assert.ok(result.sent.some((s) => s.name === "presence" && s.attrs.to === full && s.attrs.type !== "error"), `${full} entered: ${result.sent.join("\n")}`);
  return result.state;
}

function configure(state: ServiceState, room: string, owner: string, fields = ""): ServiceState {
  const result = run(
    state,
    `<iq from='${owner}' to='${room}@${DOMAIN}' id='cfg' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` +
      `<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>${fields}</x></query></iq>`,
  );
  assertMatches(one(result, owner, "iq"), parseXml(`<iq type='result' id='cfg'/>`));
  return result.state;
}

/** A room created and configured by `owner`, entered by the others in order. */
function room(name: string, owner: [string, string], others: [string, string][] = [], fields = ""): ServiceState {
  let state = join(emptyServiceState(), name, owner[0], owner[1]);
  state = configure(state, name, owner[0], fields);
  for (const [full, nick] of others) state = join(state, name, full, nick);
  return state;
}

function admin(state: ServiceState, from: string, roomName: string, items: string, type = "set", id = "a1"): Run {
  return run(state, `<iq from='${from}' to='${roomName}@${DOMAIN}' id='${id}' type='${type}'><query xmlns='http://jabber.org/protocol/muc#admin'>${items}</query></iq>`);
}

function error(result: Run, jid: string, type: string, condition: string): void {
  assert.equal(result.sent.length, 1, `only the error is sent: ${result.sent.join("\n")}`);
  assertMatches(one(result, jid, "iq"), parseXml(`<iq type='error'><error type='${type}'><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`));
}

/** The example without the attributes our service (like Prosody) leaves out of items. */
function withoutItemAttrs(el: Element, ...names: string[]): Element {
  for (const child of el.getChildElements()) {
    if (child.name === "item") for (const name of names) delete child.attrs[name];
    withoutItemAttrs(child, ...names);
  }
  return el;
}

const FLUELLEN = "fluellen@shakespeare.lit/pda";
const PISTOL = "pistol@shakespeare.lit/harfleur";
const GOWER = "gower@shakespeare.lit/cell";

test("§8.2: Moderator Kicks Occupant; the service removes it (307, actor, reason) and tells the others", () => {
  const state = room("harfleur", [FLUELLEN, "Fluellen"], [[PISTOL, "pistol"], [GOWER, "Gower"]]);
  const result = run(state, example("0045", "Moderator Kicks Occupant"));
  assertMatches(one(result, PISTOL, "presence"), example("0045", "Service Removes Kicked Occupant"));
  assertMatches(one(result, GOWER, "presence"), example("0045", "Service Informs Remaining Occupants", 1));
  assertMatches(one(result, FLUELLEN, "iq"), example("0045", "Service Informs Moderator of Success", 4));
  // The moderator who kicked sees the actor's real JID; the kicked occupant and others do not.
  const forModerator = one(result, FLUELLEN, "presence");
  assert.equal(forModerator.getChild("x", "http://jabber.org/protocol/muc#user")!.getChild("item")!.getChild("actor")!.attrs.jid, FLUELLEN);
  assert.equal(one(result, PISTOL, "presence").getChild("x")!.getChild("item")!.getChild("actor")!.attrs.jid, undefined);
  const harfleur = result.state.rooms.get(`harfleur@${DOMAIN}`)!;
  assert.equal(harfleur.occupants.has("pistol"), false);
  assert.ok(result.effects.some((e) => e.kind === "store" && e.write.op === "occupant.delete" && e.write.jid === PISTOL));
  assert.ok(result.effects.some((e) => e.kind === "audit" && e.record.kind === "occupant.kicked"));
});

test("§8.2: a participant who tries to kick is forbidden; kicking an unknown nick is item-not-found", () => {
  const state = room("harfleur", [FLUELLEN, "Fluellen"], [[PISTOL, "pistol"], [GOWER, "Gower"]]);
  error(admin(state, GOWER, "harfleur", `<item nick='pistol' role='none'/>`), GOWER, "auth", "forbidden");
  error(admin(state, FLUELLEN, "harfleur", `<item nick='nobody' role='none'/>`), FLUELLEN, "cancel", "item-not-found");
});

const CRONE = "crone1@shakespeare.lit/desktop";
const HAG = "hag66@shakespeare.lit/pda";
const WICCA = "wiccarocks@shakespeare.lit/laptop";

function coven(fields = ""): ServiceState {
  let state = room("coven", [CRONE, "firstwitch"], [], fields);
  state = admin(state, CRONE, "coven", `<item affiliation='member' jid='hag66@shakespeare.lit'/><item affiliation='admin' jid='wiccarocks@shakespeare.lit'/>`).state;
  state = join(state, "coven", HAG, "thirdwitch");
  return join(state, "coven", WICCA, "secondwitch");
}

test("§8.4/§8.3: Moderator Revokes Voice from a Participant, then Grants Voice (With a Reason)", () => {
  const revoked = run(coven(), example("0045", "Moderator Revokes Voice from a Participant"));
  assertMatches(one(revoked, CRONE, "presence"), example("0045", "Service Notes Loss of Voice"));
  assertMatches(one(revoked, CRONE, "iq"), example("0045", "Service Informs Moderator of Success", 0));
  assert.equal(revoked.state.rooms.get(`coven@${DOMAIN}`)!.occupants.get("thirdwitch")!.role, "visitor");

  const granted = run(revoked.state, example("0045", "Moderator Grants Voice to a Visitor (With a Reason)"));
  assertMatches(one(granted, CRONE, "presence"), withoutItemAttrs(example("0045", "Service Sends Notice of Voice to All Occupants"), "nick"));
  assert.equal(granted.state.rooms.get(`coven@${DOMAIN}`)!.occupants.get("thirdwitch")!.role, "participant");
});

test("§8.4: voice is never revoked from an admin (not-allowed)", () => {
  error(admin(coven(), CRONE, "coven", `<item nick='secondwitch' role='visitor'/>`), CRONE, "cancel", "not-allowed");
});

test("§8.5: Moderator Requests Voice List", () => {
  const result = admin(coven(), CRONE, "coven", `<item role='participant'/>`, "get");
  const list = one(result, CRONE, "iq");
  assertMatches(list, parseXml(`<iq type='result'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='${HAG}' nick='thirdwitch' role='participant'/></query></iq>`));
  error(admin(coven(), HAG, "coven", `<item role='participant'/>`, "get"), HAG, "auth", "forbidden");
});

test("§9.6/§9.7: Admin Grants and Revokes Moderator Status; the moderator list", () => {
  const granted = run(coven(), example("0045", "Admin Grants Moderator Status"));
  assertMatches(one(granted, CRONE, "presence"), example("0045", "Service Sends Notice of Moderator Status to All Occupants"));
  assertMatches(one(granted, CRONE, "iq"), example("0045", "Service Informs Admin of Success", 2));
  // A new moderator in a semi-anonymous room is sent everyone's presence again, now with real JIDs.
  assert.ok(to(granted, HAG, "presence").some((p) => p.attrs.from === `coven@${DOMAIN}/firstwitch` && p.getChild("x")!.getChild("item")!.attrs.jid === CRONE));

  const list = run(granted.state, example("0045", "Admin Requests Moderator List"));
  const items = one(list, CRONE, "iq").getChild("query")!.getChildren("item");
  assert.ok(items.some((item) => item.attrs.nick === "thirdwitch" && item.attrs.jid === HAG && item.attrs.role === "moderator"));

  // A member who is a moderator may not kick an admin, nor take moderator status from anyone.
  error(admin(granted.state, HAG, "coven", `<item nick='secondwitch' role='none'/>`), HAG, "cancel", "not-allowed");
  error(admin(granted.state, HAG, "coven", `<item nick='firstwitch' role='participant'/>`), HAG, "cancel", "not-allowed");

  const revoked = run(granted.state, example("0045", "Admin Revokes Moderator Status"));
  assert.equal(revoked.state.rooms.get(`coven@${DOMAIN}`)!.occupants.get("thirdwitch")!.role, "participant");
  // §9.7: moderator status is not revoked from an admin.
  error(admin(coven(), CRONE, "coven", `<item nick='secondwitch' role='participant'/>`), CRONE, "cancel", "not-allowed");
});

const KING = "kinghenryv@shakespeare.lit/throne";
const EARL = "earlofcambridge@shakespeare.lit/stabber";
const EXETER = "exeter@shakespeare.lit/pda";

test("§9.1: Admin Bans User (With a Reason): 301 with actor and reason; the ban list", () => {
  const state = room("southampton", [KING, "The ♚"], [[EARL, "cambridge"], [EXETER, "Exeter"]], `<field var='muc#roomconfig_whois'><value>anyone</value></field>`);
  const result = run(state, example("0045", "Admin Bans User (With a Reason)"));
  assertMatches(one(result, EARL, "presence"), example("0045", "Service Removes Banned User"));
  assertMatches(one(result, EXETER, "presence"), example("0045", "Service Informs Remaining Occupants", 0));
  assertMatches(one(result, KING, "iq"), example("0045", "Service Informs Admin or Owner of Success"));
  assert.ok(
    result.effects.some((e) => e.kind === "store" && e.write.op === "affiliation.set" && e.write.jid === "earlofcambridge@shakespeare.lit" && e.write.entry?.affiliation === "outcast"),
  );
  assert.ok(result.effects.some((e) => e.kind === "audit" && e.record.kind === "occupant.banned" && e.record.subjectJid === "earlofcambridge@shakespeare.lit"));

  const list = run(result.state, example("0045", "Admin Requests Ban List"));
  assertMatches(one(list, KING, "iq"), example("0045", "Service Sends Ban List to Admin"));

  // Banned users may not come back.
  const again = run(result.state, `<presence from='${EARL}' to='southampton@${DOMAIN}/cambridge'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  assertMatches(one(again, EARL), parseXml(`<presence type='error'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`));
});

test("§9.1: an admin trying to ban an owner gets not-allowed; a participant trying to ban is forbidden", () => {
  let state = room("southampton", [KING, "The ♚"], [[EXETER, "Exeter"]]);
  state = admin(state, KING, "southampton", `<item affiliation='admin' jid='exeter@shakespeare.lit'/>`).state;
  error(admin(state, EXETER, "southampton", `<item affiliation='outcast' jid='kinghenryv@shakespeare.lit'/>`), EXETER, "cancel", "not-allowed");
  error(admin(state, EXETER, "southampton", `<item affiliation='owner' jid='someone@shakespeare.lit'/>`), EXETER, "auth", "forbidden");
  state = join(state, "southampton", EARL, "cambridge");
  error(admin(state, EARL, "southampton", `<item affiliation='outcast' jid='exeter@shakespeare.lit'/>`), EARL, "auth", "forbidden");
});

test("§9.3/§9.5: Admin Grants Membership to an occupant; Admin Requests Member List", () => {
  let state = room("coven", [CRONE, "firstwitch"], [[HAG, "thirdwitch"]]);
  const granted = run(state, example("0045", "Admin Grants Membership"));
  assertMatches(one(granted, CRONE, "presence"), withoutItemAttrs(example("0045", "Service Sends Notice of Membership to All Occupants", 0), "nick"));
  assertMatches(one(granted, CRONE, "iq"), example("0045", "Service Informs Admin of Success", 1));
  state = granted.state;
  assert.deepEqual(state.rooms.get(`coven@${DOMAIN}`)!.affiliations.get("hag66@shakespeare.lit"), { affiliation: "member", nick: "thirdwitch" });

  const list = run(state, example("0045", "Admin Requests Member List"));
  // Like Prosody, the list names JIDs and reserved nicks, not roles.
  assertMatches(one(list, CRONE, "iq"), withoutItemAttrs(example("0045", "Service Sends Member List to Admin"), "role"));
  // A mere member of a semi-anonymous room may not read it.
  error(run(state, `<iq from='${HAG}' to='coven@${DOMAIN}' id='l' type='get'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query></iq>`), HAG, "auth", "forbidden");
});

test("§9.3: granting membership to someone not in the room notifies the moderators by message", () => {
  const state = room("coven", [CRONE, "firstwitch"], [[HAG, "thirdwitch"]]);
  const result = admin(state, CRONE, "coven", `<item affiliation='member' jid='hecate@shakespeare.lit'/>`);
  assertMatches(
    one(result, CRONE, "message"),
    parseXml(`<message from='coven@${DOMAIN}'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' jid='hecate@shakespeare.lit'/></x></message>`),
  );
  assert.equal(to(result, HAG).length, 0, "non-moderators of a semi-anonymous room are not told real JIDs");
});

test("§9.4: revoking membership in a members-only room removes the occupant with 321", () => {
  let state = room("coven", [CRONE, "firstwitch"], [], `<field var='muc#roomconfig_membersonly'><value>1</value></field>`);
  state = admin(state, CRONE, "coven", `<item affiliation='member' jid='hag66@shakespeare.lit'/>`).state;
  state = join(state, "coven", HAG, "thirdwitch");
  const result = run(state, example("0045", "Admin Revokes Membership"));
  assertMatches(
    one(result, HAG, "presence"),
    parseXml(`<presence type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'><actor nick='firstwitch'/></item><status code='321'/><status code='110'/></x></presence>`),
  );
  assertMatches(
    one(result, CRONE, "presence"),
    parseXml(`<presence type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none' jid='${HAG}'><actor nick='firstwitch' jid='${CRONE}'/></item><status code='321'/></x></presence>`),
  );
  assert.equal(result.state.rooms.get(`coven@${DOMAIN}`)!.occupants.has("thirdwitch"), false);
});

test("§10.2: making a room members-only removes its non-members with 322", () => {
  const state = room("coven", [CRONE, "firstwitch"], [[HAG, "thirdwitch"]]);
  const result = run(
    state,
    `<iq from='${CRONE}' to='coven@${DOMAIN}' id='mo' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` +
      `<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var='muc#roomconfig_membersonly'><value>1</value></field></x></query></iq>`,
  );
  assertMatches(
    one(result, HAG, "presence"),
    parseXml(`<presence type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/><status code='322'/><status code='110'/></x></presence>`),
  );
  assertMatches(one(result, CRONE, "presence"), parseXml(`<presence type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><status code='322'/></x></presence>`));
  assert.equal(result.state.rooms.get(`coven@${DOMAIN}`)!.occupants.size, 1);
});

test("§10.3/§10.6: Owner Grants Owner Status; the last owner may not step down (conflict)", () => {
  const state = room("coven", [CRONE, "firstwitch"]);
  error(admin(state, CRONE, "coven", `<item affiliation='admin' jid='crone1@shakespeare.lit'/>`), CRONE, "cancel", "conflict");
  const granted = run(state, example("0045", "Owner Grants Owner Status"));
  assertMatches(one(granted, CRONE, "iq"), example("0045", "Service Informs Owner of Success"));
  const owners = admin(granted.state, CRONE, "coven", `<item affiliation='owner'/>`, "get");
  const jids = one(owners, CRONE, "iq").getChild("query")!.getChildren("item").map((i) => i.attrs.jid).sort();
  assert.deepEqual(jids, ["crone1@shakespeare.lit", "hecate@shakespeare.lit"]);
  // With another owner, stepping down is fine.
  const down = admin(granted.state, CRONE, "coven", `<item affiliation='admin' jid='crone1@shakespeare.lit'/>`);
  assert.equal(down.state.rooms.get(`coven@${DOMAIN}`)!.affiliations.get("crone1@shakespeare.lit")!.affiliation, "admin");
});

test("several items are applied all or nothing", () => {
  const state = room("coven", [CRONE, "firstwitch"], [[HAG, "thirdwitch"]]);
  const both = admin(state, CRONE, "coven", `<item affiliation='member' jid='a@shakespeare.lit'/><item affiliation='outcast' jid='b@shakespeare.lit'/>`);
  const affiliations = both.state.rooms.get(`coven@${DOMAIN}`)!.affiliations;
  assert.equal(affiliations.get("a@shakespeare.lit")!.affiliation, "member");
  assert.equal(affiliations.get("b@shakespeare.lit")!.affiliation, "outcast");

  const failed = admin(state, CRONE, "coven", `<item affiliation='member' jid='a@shakespeare.lit'/><item affiliation='member' jid='b@shakespeare.lit/res'/>`);
  error(failed, CRONE, "modify", "jid-malformed");
  assert.equal(failed.state, state, "the state is unchanged");
  assert.ok(!failed.effects.some((e) => e.kind === "store"), "nothing is stored");
});

test("malformed requests: no item, both or neither of role and affiliation, unknown values", () => {
  const state = room("coven", [CRONE, "firstwitch"], [[HAG, "thirdwitch"]]);
  error(admin(state, CRONE, "coven", ``), CRONE, "modify", "bad-request");
  error(admin(state, CRONE, "coven", `<item nick='thirdwitch' role='none' affiliation='none'/>`), CRONE, "modify", "bad-request");
  error(admin(state, CRONE, "coven", `<item jid='a@shakespeare.lit'/>`), CRONE, "modify", "bad-request");
  error(admin(state, CRONE, "coven", `<item affiliation='king' jid='a@shakespeare.lit'/>`), CRONE, "modify", "bad-request");
  error(admin(state, CRONE, "coven", `<item nick='thirdwitch' role='king'/>`), CRONE, "modify", "bad-request");
  error(admin(state, CRONE, "coven", `<item affiliation='king'/>`, "get"), CRONE, "modify", "bad-request");
});

test("reserving a nick held by someone else removes that occupant (307); a nick reserved by another is a conflict", () => {
  const ROSALINE = "rosaline@shakespeare.lit/home";
  const state = room("coven", [CRONE, "firstwitch"], [[ROSALINE, "thirdwitch"]]);
  const result = admin(state, CRONE, "coven", `<item affiliation='member' jid='hag66@shakespeare.lit' nick='thirdwitch'/>`);
  assertMatches(
    one(result, ROSALINE, "presence"),
    parseXml(`<presence type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item role='none'><reason>This nickname is reserved</reason></item><status code='307'/><status code='110'/></x></presence>`),
  );
  error(admin(result.state, CRONE, "coven", `<item affiliation='member' jid='other@shakespeare.lit' nick='thirdwitch'/>`), CRONE, "cancel", "conflict");
});
