// XEP-0059 Result Set Management: one parse/build pair for the request <set/> and one for the answer.
import xml, { type Element } from "@xmpp/xml";

export const NS_RSM = "http://jabber.org/protocol/rsm";

/** A page request. `before: ""` asks for the last page (XEP-0059 §2.5). */
export interface RsmRequest {
  max?: number;
  after?: string;
  before?: string;
}

/** What a page holds: its first and last ids (absent on an empty page) and the total count. */
export interface RsmResult {
  first?: string;
  last?: string;
  count?: number;
}

export class RsmParseError extends Error {}

function count(text: string, what: string): number {
  if (!/^\d{1,9}$/.test(text.trim())) throw new RsmParseError(`<${what}/> must be a non-negative integer`);
  return Number(text.trim());
}

/** Reads the <set/> of a request; undefined when there is none. Throws RsmParseError on bad values. */
export function parseRsmRequest(parent: Element): RsmRequest | undefined {
  const set = parent.getChild("set", NS_RSM);
  if (!set) return undefined;
  const request: RsmRequest = {};
  const max = set.getChild("max");
  if (max) request.max = count(max.getText(), "max");
  const after = set.getChild("after");
  if (after) {
    if (after.getText() === "") throw new RsmParseError("<after/> must name an item");
    request.after = after.getText();
  }
  const before = set.getChild("before");
  if (before) request.before = before.getText();
  if (set.getChild("index")) throw new RsmParseError("<index/> is not supported");
  return request;
}

export function buildRsmRequest(request: RsmRequest): Element {
  return xml(
    "set",
    { xmlns: NS_RSM },
    request.max !== undefined ? xml("max", {}, String(request.max)) : null,
    request.after !== undefined ? xml("after", {}, request.after) : null,
    request.before !== undefined ? xml("before", {}, request.before) : null,
  );
}

export function parseRsmResult(parent: Element): RsmResult {
  const set = parent.getChild("set", NS_RSM);
  if (!set) return {};
  const result: RsmResult = {};
  const first = set.getChildText("first");
  const last = set.getChildText("last");
  const total = set.getChildText("count");
  if (first !== null) result.first = first;
  if (last !== null) result.last = last;
  if (total !== null && /^\d+$/.test(total.trim())) result.count = Number(total.trim());
  return result;
}

export function buildRsmResult(result: RsmResult): Element {
  return xml(
    "set",
    { xmlns: NS_RSM },
    result.first !== undefined ? xml("first", {}, result.first) : null,
    result.last !== undefined ? xml("last", {}, result.last) : null,
    result.count !== undefined ? xml("count", {}, String(result.count)) : null,
  );
}
