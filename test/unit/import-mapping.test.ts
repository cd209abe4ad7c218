// The import command's pure mapping: configuration fields through the gateway's own configuration
// code, archive ids that never collide with new ones, archived messages as history rows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mapArchivedMessage, mapConfiguration, importedArchiveId, sourceArchiveId } from "../../src/commands/import/mapping.js";
import { randomId } from "../../src/shell/clock.js";
import { parseXml } from "../helpers/xml.js";
import { parseCommandLine } from "../../src/cli.js";

const NEW = "moved@conference.example.org";

test("configuration: known fields map with their values, unknown and refused ones are reported with a reason", () => {
  const mapped = mapConfiguration(
    [
      { var: "muc#roomconfig_roomname", type: "text-single", values: ["Coven"] },
      { var: "muc#roomconfig_persistentroom", type: "boolean", values: ["1"] },
      { var: "muc#roomconfig_membersonly", type: "boolean", values: [] },
      { var: "muc#roomconfig_whois", type: "list-single", values: ["anyone"] },
      { var: "muc#roomconfig_historylength", type: "text-single", values: ["many"] },
      { var: "{http://prosody.im/protocol/muc}roomconfig_allowmemberinvites", type: "boolean", values: ["1"] },
      { var: "muc#roomconfig_roomowners", type: "jid-multi", values: ["a@example.org"] },
      { var: "", type: "fixed", values: ["Room information"] },
    ],
    NEW,
    "owner@example.org/import",
    100,
  );
  assert.equal(mapped.config.name, "Coven");
  assert.equal(mapped.config.persistent, true);
  assert.equal(mapped.config.membersOnly, false, "a boolean without a value is false");
  assert.equal(mapped.config.whois, "anyone");
  assert.deepEqual(mapped.mapped.sort(), ["muc#roomconfig_membersonly", "muc#roomconfig_persistentroom", "muc#roomconfig_roomname", "muc#roomconfig_whois"]);
  assert.deepEqual(
    mapped.unmapped.map((u) => u.field),
    ["muc#roomconfig_historylength", "{http://prosody.im/protocol/muc}roomconfig_allowmemberinvites"],
  );
  assert.match(mapped.unmapped[0]!.reason, /whole number/);
  assert.match(mapped.unmapped[1]!.reason, /no such setting/);
});

test("archive ids: the old ones are kept, except those shaped like new ones, which get a prefix; the mapping is stable and reversible", () => {
  for (const old of ["78527-06716-51603", "17000000000000001", "5d6b8a1c-8f4e-4c0d-9a73-12ab34cd56ef"]) {
    assert.equal(importedArchiveId(old), old);
    assert.equal(sourceArchiveId(importedArchiveId(old)), old);
  }
  // 16 characters of [A-Za-z0-9_-], as randomId() draws; e.g. a 16-digit ejabberd archive id.
  for (const shapedLikeOurs of ["1700000000000000", ...Array.from({ length: 100 }, randomId)]) {
    const imported = importedArchiveId(shapedLikeOurs);
    assert.notEqual(imported, shapedLikeOurs, "never equal to an id the room could draw");
    assert.equal(importedArchiveId(shapedLikeOurs), imported, "stable");
    assert.equal(sourceArchiveId(imported), shapedLikeOurs);
  }
  assert.equal(sourceArchiveId(importedArchiveId("import:x")), "import:x");
});

test("an archived message becomes a history row: original time, nick, real JID, occupant-id and payloads; the old room's stamps replaced", () => {
  const message = parseXml(`<message xmlns='jabber:client' from='coven@chat.shakespeare.lit/firstwitch' id='162BEBB1' type='groupchat' xml:lang='en'>
      <body>Thrice the brinded cat hath mew'd.</body>
      <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' jid='crone1@shakespeare.lit/desktop' role='participant'/></x>
      <occupant-id xmlns='urn:xmpp:occupant-id:0' id='dd72603d'/>
      <stanza-id xmlns='urn:xmpp:sid:0' by='coven@chat.shakespeare.lit' id='78527-06716-51603'/>
      <reply xmlns='urn:xmpp:reply:0' id='AbCdEfGhIjKlMnOp' to='coven@chat.shakespeare.lit/thirdwitch'/>
      <custom xmlns='urn:example:unknown'><kept/></custom>
    </message>`);
  const mapped = mapArchivedMessage({ id: "78527-06716-51603", stamp: new Date("2002-10-13T23:58:37Z"), message }, NEW);
  assert.ok("entry" in mapped);
  const { entry } = mapped;
  assert.equal(entry.stanzaId, "78527-06716-51603");
  assert.equal(entry.nick, "firstwitch");
  assert.equal(entry.senderJid, "crone1@shakespeare.lit/desktop");
  assert.equal(entry.occupantId, "dd72603d");
  assert.equal(entry.at.toISOString(), "2002-10-13T23:58:37.000Z");
  const stanza = entry.stanza;
  assert.equal(stanza.attrs.from, `${NEW}/firstwitch`);
  assert.equal(stanza.attrs.id, "162BEBB1");
  assert.equal(stanza.attrs["xml:lang"], "en");
  assert.deepEqual(stanza.getChildren("stanza-id", "urn:xmpp:sid:0").map((s) => `${s.attrs.by} ${s.attrs.id}`), [`${NEW} 78527-06716-51603`]);
  assert.equal(stanza.getChild("x", "http://jabber.org/protocol/muc#user"), undefined);
  assert.ok(stanza.getChild("custom", "urn:example:unknown")?.getChild("kept"));
  assert.equal(stanza.getChild("reply", "urn:xmpp:reply:0")!.attrs.id, "import:AbCdEfGhIjKlMnOp", "references follow the id mapping");

  const subject = parseXml(`<message from='coven@chat.shakespeare.lit/firstwitch' type='groupchat'><subject>Fire</subject></message>`);
  assert.deepEqual(mapArchivedMessage({ id: "s1", stamp: new Date(), message: subject }, NEW), { skipped: "no body (subject change, chat state or marker)" });
  const chat = parseXml(`<message from='coven@chat.shakespeare.lit/firstwitch' type='chat'><body>pm</body></message>`);
  assert.deepEqual(mapArchivedMessage({ id: "c1", stamp: new Date(), message: chat }, NEW), { skipped: "not a groupchat message" });
});

test("the import command line: the room JID and --owner are required; import options go with import only", () => {
  const ok = parseCommandLine(["import", "coven@chat.example", "--owner", "crone@example", "--to", "moved", "--tombstone", "--json", "--server", "xmpp://127.0.0.1:5222"]);
  assert.equal(ok.kind, "run");
  assert.equal(ok.kind === "run" && ok.options.json, true);
  assert.deepEqual(ok.kind === "run" && ok.import, { roomJid: "coven@chat.example", owner: "crone@example", server: "xmpp://127.0.0.1:5222", to: "moved", tombstone: true, dryRun: false, insecure: false, noArchive: false });
  assert.equal(parseCommandLine(["import", "coven@chat.example"]).kind, "usage-error");
  assert.equal(parseCommandLine(["import", "--owner", "a@b"]).kind, "usage-error");
  assert.equal(parseCommandLine(["import", "r@c", "--owner", "a@b", "--server", "example.org"]).kind, "usage-error");
  assert.equal(parseCommandLine(["import", "r@c", "--owner", "a@b", "--tombstone", "--dry-run"]).kind, "usage-error");
  assert.equal(parseCommandLine(["import", "r@c", "--owner", "a@b", "--owner", "c@d"]).kind, "usage-error");
  assert.equal(parseCommandLine(["start", "--owner", "a@b"]).kind, "usage-error");
});
