// The audit records the pure engine emits for a room's life (src/core/room/audit-trail.ts), the
// retention setting's limits (plugins/audit.ts) and the canonical form of the hash chain.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { AuditRecord } from "../../src/core/effects.js";
import { canonicalJson, canonicalRow, GENESIS_HASH, rowHash } from "../../src/core/audit-chain.js";
import { RoomDriver } from "../helpers/room-driver.js";

const DOMAIN = "chat.shakespeare.lit";
const ROOM = `coven@${DOMAIN}`;
const OWNER = "crone1@shakespeare.lit/desktop";
const SECOND = "wiccarocks@shakespeare.lit/laptop";
const THIRD = "hag66@shakespeare.lit/pda";
const ADMIN_NS = "http://jabber.org/protocol/muc#admin";

/** Drives stanzas and keeps every audit record emitted, in order. */
class AuditedDriver extends RoomDriver {
  readonly audits: AuditRecord[] = [];
  override send(stanza: Parameters<RoomDriver["send"]>[0]) {
    const sent = super.send(stanza);
    for (const effect of this.effects) if (effect.kind === "audit") this.audits.push(effect.record);
    return sent;
  }
  admin(from: string, item: string, id = "admin") {
    return this.send(`<iq from='${from}' to='${ROOM}' id='${id}' type='set'><query xmlns='${ADMIN_NS}'>${item}</query></iq>`);
  }
}

const rows = (audits: AuditRecord[]) => audits.map((a) => [a.kind, a.actorJid, a.subjectJid ?? null]);

test("a room's life is audited event by event, with actors and subjects", () => {
  const d = new AuditedDriver(DOMAIN);
  d.join("coven", "crone", OWNER);
  d.configure("coven", OWNER, { "muc#roomconfig_roomname": "The Coven", "muc#roomconfig_roomsecret": "cauldron" });
  d.send(`<presence from='${SECOND}' to='${ROOM}/second'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  d.send(`<presence from='${SECOND}' to='${ROOM}/second'><x xmlns='http://jabber.org/protocol/muc'><password>cauldron</password></x></presence>`);
  d.send(`<presence from='${THIRD}' to='${ROOM}/third'><x xmlns='http://jabber.org/protocol/muc'><password>cauldron</password></x></presence>`);
  d.send(`<presence from='${SECOND}' to='${ROOM}/thirdwitch'/>`);
  d.send(`<message from='${SECOND}' to='${ROOM}' type='groupchat'><body>Thrice the brinded cat hath mew'd.</body></message>`);
  d.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><subject>Fire Burn and Cauldron Bubble!</subject></message>`);
  d.admin(OWNER, `<item nick='third' role='visitor'><reason>quiet</reason></item>`);
  d.admin(OWNER, `<item nick='third' role='none'><reason>Avaunt</reason></item>`, "kick");
  d.admin(OWNER, `<item jid='wiccarocks@shakespeare.lit' affiliation='outcast'><reason>Treason</reason></item>`, "ban");
  d.send(`<iq from='${OWNER}' to='${ROOM}' id='destroy' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy jid='heath@${DOMAIN}'><reason>Macbeth doth come</reason></destroy></query></iq>`);

  const crone = "crone1@shakespeare.lit";
  const wicca = "wiccarocks@shakespeare.lit";
  const hag = "hag66@shakespeare.lit";
  assert.deepEqual(rows(d.audits), [
    ["room.created", crone, null],
    ["occupant.entered", crone, crone],
    ["config.changed", crone, null],
    ["occupant.entry_refused", wicca, wicca],
    ["occupant.entered", wicca, wicca],
    ["occupant.entered", hag, hag],
    ["nick.changed", wicca, wicca],
    ["message", wicca, null],
    ["subject.changed", crone, null],
    ["role.changed", crone, hag],
    ["occupant.kicked", crone, hag],
    ["occupant.left", crone, hag],
    ["occupant.banned", crone, wicca],
    ["occupant.left", crone, wicca],
    ["occupant.left", crone, crone],
    ["room.destroyed", crone, null],
  ]);
  const byKind = (kind: string, n = 0) => d.audits.filter((a) => a.kind === kind)[n]!.details;
  assert.deepEqual(byKind("occupant.entered", 1), { jid: SECOND, nick: "second", role: "participant", affiliation: "none", via: "direct" });
  assert.deepEqual(byKind("config.changed").changes, { name: { from: "", to: "The Coven" }, password: { from: "", to: "(set)" } });
  assert.equal(byKind("occupant.entry_refused").condition, "not-authorized");
  assert.deepEqual(byKind("nick.changed"), { jid: SECOND, previous: "second", nick: "thirdwitch" });
  const message = byKind("message");
  assert.equal(typeof message.stanzaId, "string");
  assert.equal(Object.hasOwn(message, "body"), false, "a message event refers to the stored message, it does not copy it");
  assert.deepEqual(byKind("subject.changed"), { jid: OWNER, nick: "crone", previous: null, subject: "Fire Burn and Cauldron Bubble!" });
  assert.deepEqual(byKind("role.changed"), { nick: "third", jid: hag, previous: "participant", role: "visitor", reason: "quiet" });
  assert.deepEqual(byKind("occupant.left", 0), { jid: THIRD, nick: "third", role: "visitor", affiliation: "none", cause: "kicked", reason: "Avaunt" });
  assert.equal(byKind("occupant.left", 1).cause, "banned");
  assert.equal(byKind("occupant.left", 2).cause, "destroyed");
  assert.deepEqual(byKind("room.destroyed"), { reason: "Macbeth doth come", alternate: `heath@${DOMAIN}`, cause: "destroyed", occupants: 1 });
  assert.ok(d.audits.every((a) => a.roomJid === ROOM));
});

test("leaving, and the last occupant leaving a temporary room, are audited", () => {
  const d = new AuditedDriver(DOMAIN);
  d.join("coven", "crone", OWNER);
  d.send(`<presence from='${OWNER}' to='${ROOM}/crone' type='unavailable'><status>bye</status></presence>`);
  assert.deepEqual(rows(d.audits.slice(-2)), [
    ["occupant.left", "crone1@shakespeare.lit", "crone1@shakespeare.lit"],
    ["room.destroyed", null, null],
  ]);
  assert.deepEqual(d.audits.at(-2)!.details, { jid: OWNER, nick: "crone", role: "moderator", affiliation: "owner", cause: "left", reason: "bye" });
  assert.equal(d.audits.at(-1)!.details.cause, "abandoned");
});

test("with traffic auditing off, entries, exits and messages are not audited; changes still are", () => {
  const d = new AuditedDriver(DOMAIN, [], { auditTraffic: false });
  d.join("coven", "crone", OWNER);
  d.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>hello</body></message>`);
  d.send(`<presence from='${OWNER}' to='${ROOM}/crone' type='unavailable'/>`);
  assert.deepEqual(d.audits.map((a) => a.kind), ["room.created", "room.destroyed"]);
  // The message is still stored: audit rows refer to history rows, history does not depend on audit.
  d.join("coven", "crone", OWNER);
  d.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>hello</body></message>`);
  assert.ok(d.effects.some((e) => e.kind === "store" && e.write.op === "history.append"));
});

test("a refused registration is audited", () => {
  const d = new AuditedDriver(DOMAIN);
  d.join("coven", "crone", OWNER);
  d.send(`<iq from='${THIRD}' to='${ROOM}' id='reg' type='set'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
  const refused = d.audits.at(-1)!;
  assert.deepEqual([refused.kind, refused.actorJid, refused.details.condition], ["registration.refused", "hag66@shakespeare.lit", "registration-required"]);
});

test("an owner chooses the room's retention within the operator's limits", () => {
  const d = new AuditedDriver(DOMAIN, [], { retention: { defaultDays: 30, minDays: 7, maxDays: 365 } });
  d.join("coven", "crone", OWNER);
  const field = "dmuc#roomconfig_retentiondays";
  const errorOf = (stanzas: ReturnType<RoomDriver["send"]>) => stanzas.find((s) => s.attrs.type === "error")?.getChild("error")?.getChildElements()[0]?.name;
  assert.equal(errorOf(d.configure("coven", OWNER, { [field]: "3" })), "not-acceptable");
  assert.equal(errorOf(d.configure("coven", OWNER, { [field]: "400" })), "not-acceptable");
  assert.equal(errorOf(d.configure("coven", OWNER, { [field]: "0" })), "not-acceptable", "forever is not allowed under a maximum");
  assert.equal(errorOf(d.configure("coven", OWNER, { [field]: "90" })), undefined);
  assert.equal(d.room("coven")!.config.retentionDays, 90);
  assert.deepEqual(d.audits.at(-1)!.details.changes, { retentionDays: { from: null, to: 90 } });
  d.configure("coven", OWNER, { [field]: "" });
  assert.equal(d.room("coven")!.config.retentionDays, null);
});

test("history past the room's retention is no longer replayed to those entering", () => {
  const d = new AuditedDriver(DOMAIN, [], { retention: { defaultDays: 30, minDays: 1, maxDays: 0 } });
  d.join("coven", "crone", OWNER);
  d.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>old news</body></message>`);
  d.now = new Date(d.now.getTime() + 20 * 86_400_000);
  d.send(`<message from='${OWNER}' to='${ROOM}' type='groupchat'><body>recent</body></message>`);
  d.now = new Date(d.now.getTime() + 15 * 86_400_000);
  const replayed = d.send(`<presence from='${THIRD}' to='${ROOM}/third'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  const bodies = replayed.filter((s) => s.attrs.to === THIRD && s.name === "message").map((s) => s.getChildText("body")).filter(Boolean);
  assert.deepEqual(bodies, ["recent"]);
  assert.deepEqual(d.room("coven")!.history.map((h) => h.stanza.getChildText("body")), ["recent"]);
});

test("the canonical form sorts keys, drops undefined and has no whitespace; the hash covers the previous one", () => {
  assert.equal(canonicalJson({ b: 1, a: [true, null, "x\n"], c: undefined, ä: { z: 1, y: 2 } }), `{"a":[true,null,"x\\n"],"b":1,"ä":{"y":2,"z":1}}`);
  // What is hashed before storing equals what is hashed after reading the jsonb back.
  const unusual = { at: new Date("2026-01-01T00:00:00Z"), gone: undefined, list: [undefined, -0, 1e21, "é\u2028"], n: NaN };
  assert.equal(canonicalJson(unusual), canonicalJson(JSON.parse(JSON.stringify(unusual))));
  const row = { roomJid: ROOM, seq: 1, at: new Date("2026-12-02T07:17:33.123Z"), kind: "message", actorJid: "a@b", subjectJid: null, details: { stanzaId: "s1" }, prevHash: GENESIS_HASH };
  assert.equal(canonicalRow(row), `["dmuc-audit-1","${ROOM}","1","2026-12-02T07:17:33.123Z","message","a@b",null,{"stanzaId":"s1"},"${GENESIS_HASH}"]`);
  assert.match(rowHash(row), /^[0-9a-f]{64}$/);
  assert.notEqual(rowHash(row), rowHash({ ...row, prevHash: "1".repeat(64) }));
  assert.notEqual(rowHash(row), rowHash({ ...row, details: { stanzaId: "s2" } }));
});
