// XEP-0313 Message Archive Management on the wire: one parse/build pair per element (the query, a
// result message, the <fin/> answer). Shared by the room archive (plugins/mam.ts) and the import
// command, which reads another service's archive with the same elements.
import xml, { type Element } from "@xmpp/xml";
import { buildForm, parseForm } from "./forms.js";
import { buildRsmRequest, buildRsmResult, parseRsmRequest, parseRsmResult, RsmParseError, type RsmRequest, type RsmResult } from "./rsm.js";
import { NS } from "./stanza.js";

export const NS_MAM = "urn:xmpp:mam:2";
export const NS_MAM_EXTENDED = "urn:xmpp:mam:2#extended";
export const NS_FORWARD = "urn:xmpp:forward:0";

export interface MamQuery {
  queryId?: string;
  /** The 'with' field: whose messages (for a room, an occupant JID room@service/nick or a real JID). */
  with?: string;
  start?: Date;
  end?: Date;
  /** XEP-0313 #extended: ids bounding the result outside RSM, and a fetch of given ids. */
  afterId?: string;
  beforeId?: string;
  ids?: string[];
  rsm?: RsmRequest;
  /** <flip-page/>: the page's items in the opposite order. */
  flipPage: boolean;
}

export interface MamResult {
  queryId?: string;
  /** The archive id of the message. */
  id: string;
  /** When the archive received it. */
  stamp: Date;
  /** The archived message as forwarded. */
  message: Element;
}

export interface MamFin {
  complete: boolean;
  rsm: RsmResult;
}

export class MamParseError extends Error {}

// XEP-0082 DateTime: date, time, optional fraction, mandatory zone.
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** XEP-0082 DateTime in UTC, with milliseconds only when there are some (as most servers write it). */
export function formatDateTime(date: Date): string {
  return date.toISOString().replace(".000Z", "Z");
}

export function parseDateTime(text: string): Date | undefined {
  if (!DATE_TIME.test(text.trim())) return undefined;
  const date = new Date(text.trim());
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function single(values: Map<string, string[]>, name: string): string | undefined {
  const list = values.get(name);
  if (list === undefined) return undefined;
  if (list.length !== 1) throw new MamParseError(`The field '${name}' takes exactly one value`);
  return list[0];
}

function dateField(values: Map<string, string[]>, name: string): Date | undefined {
  const text = single(values, name);
  if (text === undefined) return undefined;
  const date = parseDateTime(text);
  if (!date) throw new MamParseError(`The field '${name}' is not an XEP-0082 date and time`);
  return date;
}

const KNOWN_FIELDS = new Set(["with", "start", "end", "after-id", "before-id", "ids"]);

/** Reads a <query xmlns='urn:xmpp:mam:2'/>; throws MamParseError for what deserves bad-request. */
export function parseMamQuery(query: Element): MamQuery {
  const parsed: MamQuery = { flipPage: query.getChild("flip-page") !== undefined };
  if (query.attrs.queryid !== undefined) parsed.queryId = query.attrs.queryid;
  const formElement = query.getChild("x", NS.DATA_FORMS);
  if (formElement) {
    const form = parseForm(formElement);
    if (!form || form.type !== "submit") throw new MamParseError("The query form must be a submitted data form");
    if (form.formType !== NS_MAM) throw new MamParseError(`Unexpected FORM_TYPE, expected '${NS_MAM}'`);
    const values = new Map(form.fields.map((f) => [f.var, f.values]));
    for (const name of values.keys()) {
      // XEP-0313 §4.1.2: an unknown field is an error the client must be told about.
      if (!KNOWN_FIELDS.has(name)) throw new MamParseError(`Unknown field '${name}'`);
    }
    const withValue = single(values, "with");
    if (withValue !== undefined) parsed.with = withValue;
    const start = dateField(values, "start");
    const end = dateField(values, "end");
    if (start) parsed.start = start;
    if (end) parsed.end = end;
    const afterId = single(values, "after-id");
    const beforeId = single(values, "before-id");
    if (afterId !== undefined) parsed.afterId = afterId;
    if (beforeId !== undefined) parsed.beforeId = beforeId;
    const ids = values.get("ids");
    if (ids !== undefined) parsed.ids = ids;
  }
  try {
    const rsm = parseRsmRequest(query);
    if (rsm) parsed.rsm = rsm;
  } catch (err) {
    if (err instanceof RsmParseError) throw new MamParseError(err.message);
    throw err;
  }
  return parsed;
}

export function buildMamQuery(query: MamQuery): Element {
  const fields = [
    query.with !== undefined ? { var: "with", values: [query.with] } : null,
    query.start ? { var: "start", values: [formatDateTime(query.start)] } : null,
    query.end ? { var: "end", values: [formatDateTime(query.end)] } : null,
    query.afterId !== undefined ? { var: "after-id", values: [query.afterId] } : null,
    query.beforeId !== undefined ? { var: "before-id", values: [query.beforeId] } : null,
    query.ids !== undefined ? { var: "ids", values: query.ids } : null,
  ].filter((f) => f !== null);
  return xml(
    "query",
    { xmlns: NS_MAM, queryid: query.queryId },
    fields.length > 0 ? buildForm({ type: "submit", formType: NS_MAM, fields }) : null,
    query.rsm ? buildRsmRequest(query.rsm) : null,
    query.flipPage ? xml("flip-page") : null,
  );
}

/** The query form a service offers (XEP-0313 §4.1.1), with the #extended fields. */
export function buildMamQueryForm(): Element {
  return xml(
    "query",
    { xmlns: NS_MAM },
    buildForm({
      type: "form",
      formType: NS_MAM,
      fields: [
        { var: "with", type: "jid-single", values: [] },
        { var: "start", type: "text-single", values: [] },
        { var: "end", type: "text-single", values: [] },
        { var: "after-id", type: "text-single", values: [] },
        { var: "before-id", type: "text-single", values: [] },
        { var: "ids", type: "list-multi", values: [] },
      ],
    }),
  );
}

/** A result message (XEP-0313 §4.2): the archived message forwarded with its archive time. */
export function buildMamResult(result: MamResult, from: string, to: string): Element {
  return xml(
    "message",
    { from, to },
    xml(
      "result",
      { xmlns: NS_MAM, queryid: result.queryId, id: result.id },
      xml("forwarded", { xmlns: NS_FORWARD }, xml("delay", { xmlns: NS.DELAY, stamp: formatDateTime(result.stamp) }), result.message),
    ),
  );
}

/** Reads a result message; null when the message carries no MAM result or it is malformed. */
export function parseMamResult(message: Element): MamResult | null {
  const result = message.getChild("result", NS_MAM);
  const forwarded = result?.getChild("forwarded", NS_FORWARD);
  const stampText = forwarded?.getChild("delay", NS.DELAY)?.attrs.stamp;
  const inner = forwarded?.getChild("message");
  if (!result || !inner || stampText === undefined || !result.attrs.id) return null;
  const stamp = parseDateTime(stampText);
  if (!stamp) return null;
  const parsed: MamResult = { id: result.attrs.id, stamp, message: inner };
  if (result.attrs.queryid !== undefined) parsed.queryId = result.attrs.queryid;
  return parsed;
}

export function buildMamFin(fin: MamFin): Element {
  return xml("fin", { xmlns: NS_MAM, complete: fin.complete ? "true" : undefined }, buildRsmResult(fin.rsm));
}

export function parseMamFin(payload: Element | undefined): MamFin | null {
  if (!payload?.is("fin", NS_MAM)) return null;
  return { complete: payload.attrs.complete === "true", rsm: parseRsmResult(payload) };
}
