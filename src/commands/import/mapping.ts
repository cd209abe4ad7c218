// Pure mapping of what was read from the old room onto this gateway's room: the configuration form
// field by field (through the gateway's own configuration code, run in memory), affiliations, and
// each archived message as a history row with a stable archive id.
import xml from "@xmpp/xml";
import { createPlugins } from "../../../plugins/index.js";
import { emptyServiceState, MucService } from "../../core/service.js";
import type { AffiliationEntry, HistoryEntry, RoomConfig } from "../../core/room/types.js";
import { cloneElement } from "../../xmpp/element.js";
import type { FormField } from "../../xmpp/forms.js";
import type { MamResult } from "../../xmpp/mam.js";
import { NS } from "../../xmpp/stanza.js";
import { LIVE_ID_PATTERN } from "../../shell/clock.js";
import type { SourceAffiliation } from "./source.js";

export interface UnmappedField {
  field: string;
  values: string[];
  reason: string;
}

export interface MappedConfiguration {
  config: RoomConfig;
  mapped: string[];
  unmapped: UnmappedField[];
}

/** Fields of the form that are not settings: the affiliation lists, which are imported as such. */
const AFFILIATION_FIELDS = new Set(["muc#roomconfig_roomowners", "muc#roomconfig_roomadmins"]);

/**
 * Maps the old room's configuration form onto this gateway's: each field this gateway knows is
 * submitted on its own to the gateway's own configuration code (in memory, no IO), so a value it
 * refuses is reported with the reason it gives; a field it does not know is reported as unmapped.
 */
export function mapConfiguration(fields: FormField[], roomJid: string, ownerJid: string, maxHistoryMessages: number): MappedConfiguration {
  const domain = roomJid.slice(roomJid.indexOf("@") + 1);
  const service = new MucService({ domain, admins: new Set(), name: "import" }, createPlugins({ maxHistoryMessages, maxBodyChars: 10_000, ratePerSecond: 1000, burst: 1000 }));
  const context = { now: new Date(0), newId: () => "import" };
  const created = service.handle(emptyServiceState(), xml("presence", { from: ownerJid, to: `${roomJid}/owner` }, xml("x", { xmlns: NS.MUC })), context).state;
  const formReply = service.handle(created, xml("iq", { type: "get", id: "form", from: ownerJid, to: roomJid }, xml("query", { xmlns: NS.MUC_OWNER })), context);
  const ours = new Set(
    formReply.effects
      .flatMap((e) => (e.kind === "send" ? [e.stanza] : []))
      .flatMap((s) => s.getChild("query", NS.MUC_OWNER)?.getChild("x", NS.DATA_FORMS)?.getChildren("field") ?? [])
      .map((f) => f.attrs.var!),
  );
  const submit = (submitted: FormField[]) => {
    const form = xml(
      "x",
      { xmlns: NS.DATA_FORMS, type: "submit" },
      xml("field", { var: "FORM_TYPE" }, xml("value", {}, NS.MUC_ROOMCONFIG)),
      ...submitted.map((f) => xml("field", { var: f.var }, ...f.values.map((v) => xml("value", {}, v)))),
    );
    const outcome = service.handle(created, xml("iq", { type: "set", id: "cfg", from: ownerJid, to: roomJid }, xml("query", { xmlns: NS.MUC_OWNER }, form)), context);
    const reply = outcome.effects.flatMap((e) => (e.kind === "send" && e.stanza.name === "iq" ? [e.stanza] : []))[0];
    const error = reply?.attrs.type === "error" ? reply.getChild("error") : undefined;
    return { config: outcome.state.rooms.get(roomJid)?.config, error: error ? (error.getChildText("text", NS.STANZAS) ?? error.getChildElements()[0]?.name ?? "refused") : undefined };
  };

  const mapped: FormField[] = [];
  const unmapped: UnmappedField[] = [];
  for (const given of fields) {
    if (given.type === "fixed" || AFFILIATION_FIELDS.has(given.var) || given.var === "") continue;
    // XEP-0004 §3.3: a boolean field without a value is false (Prosody sends some that way).
    const field = given.type === "boolean" && given.values.length === 0 ? { ...given, values: ["0"] } : given;
    if (!ours.has(field.var)) {
      unmapped.push({ field: field.var, values: field.values, reason: "this gateway has no such setting" });
      continue;
    }
    const { error } = submit([field]);
    if (error) unmapped.push({ field: field.var, values: field.values, reason: error });
    else mapped.push(field);
  }
  const { config, error } = submit(mapped);
  if (!config || error) throw new Error(`the mapped configuration was refused: ${error ?? "no room"}`);
  return { config, mapped: mapped.map((f) => f.var), unmapped };
}

export function mapAffiliation(source: SourceAffiliation): AffiliationEntry {
  const entry: { -readonly [K in keyof AffiliationEntry]: AffiliationEntry[K] } = { affiliation: source.affiliation };
  if (source.reason !== undefined) entry.reason = source.reason;
  if (source.nick !== undefined && source.affiliation !== "outcast") entry.nick = source.nick;
  return entry;
}

const LIVE_ID = new RegExp(LIVE_ID_PATTERN);
const IMPORTED_PREFIX = "import:";

/**
 * The archive id an imported message gets: the old archive id itself (so that retractions, replies and
 * reactions that name it keep working), unless it has the shape of the ids this gateway draws for new
 * messages; those get a prefix that new ids never have. Stable: the same old id always maps alike.
 */
export function importedArchiveId(sourceId: string): string {
  return LIVE_ID.test(sourceId) || sourceId.startsWith(IMPORTED_PREFIX) ? `${IMPORTED_PREFIX}${sourceId}` : sourceId;
}

/** The old archive id of an imported message (the inverse of importedArchiveId). */
export function sourceArchiveId(archiveId: string): string {
  return archiveId.startsWith(IMPORTED_PREFIX) ? archiveId.slice(IMPORTED_PREFIX.length) : archiveId;
}

/** Elements that refer to another message by its archive (stanza) id, rewritten with the same mapping. */
const ID_REFERENCES: [string, string][] = [
  ["retract", "urn:xmpp:message-retract:1"],
  ["apply-to", "urn:xmpp:fasten:0"],
  ["reply", "urn:xmpp:reply:0"],
  ["reactions", "urn:xmpp:reactions:0"],
  ["moderate", "urn:xmpp:message-moderate:1"],
];

export type MappedMessage = { entry: HistoryEntry } | { skipped: string };

/**
 * One archived message of the old room as a history row of the new one: its original time, nick,
 * occupant-id and real JID (when the old archive gave it), body and other payloads; the old room's
 * stanza-id and muc#user <x/> replaced by the new room's.
 */
export function mapArchivedMessage(result: MamResult, newRoomJid: string): MappedMessage {
  const original = result.message;
  if (original.name !== "message" || (original.attrs.type ?? "normal") !== "groupchat") return { skipped: "not a groupchat message" };
  const hasBody = original.getChild("body") !== undefined;
  const isRetraction = original.getChild("retract", "urn:xmpp:message-retract:1") !== undefined || original.getChild("apply-to", "urn:xmpp:fasten:0") !== undefined;
  if (!hasBody && !isRetraction) return { skipped: "no body (subject change, chat state or marker)" };
  const from = original.attrs.from ?? "";
  const slash = from.indexOf("/");
  const nick = slash === -1 ? "" : from.slice(slash + 1);
  const realJid = original.getChild("x", NS.MUC_USER)?.getChild("item")?.attrs.jid ?? "";
  const occupantId = original.getChild("occupant-id", NS.OCCUPANT_ID)?.attrs.id ?? "";
  const archiveId = importedArchiveId(result.id);

  const children = original.getChildElements().filter((c) => {
    if (c.name === "stanza-id" && c.attrs.xmlns === NS.STANZA_ID) return false;
    if (c.name === "x" && c.attrs.xmlns === NS.MUC_USER) return false;
    if (c.name === "delay" && c.attrs.xmlns === NS.DELAY) return false;
    return true;
  });
  const copied = children.map((c) => {
    const copy = cloneElement(c);
    if (ID_REFERENCES.some(([name, xmlns]) => c.name === name && c.attrs.xmlns === xmlns) && copy.attrs.id) copy.attrs.id = importedArchiveId(copy.attrs.id);
    return copy;
  });
  const stanza = xml(
    "message",
    { type: "groupchat", from: nick === "" ? newRoomJid : `${newRoomJid}/${nick}`, id: original.attrs.id, "xml:lang": original.attrs["xml:lang"] },
    ...copied,
    xml("stanza-id", { xmlns: NS.STANZA_ID, id: archiveId, by: newRoomJid }),
  );
  return { entry: { stanzaId: archiveId, nick, occupantId, senderJid: realJid, at: result.stamp, stanza, chars: stanza.toString().length } };
}
