// The DMUC2 wire elements (docs/PROTOCOL.md, namespace urn:xmpp:tmp:dmuc:0): one parse/build pair each.
// Parsers return null for anything malformed; callers answer bad-request.
import xml, { type Element } from "@xmpp/xml";
import { NS } from "../../xmpp/stanza.js";
import { parseJid } from "../../xmpp/jid.js";
import { cloneElement } from "../../xmpp/element.js";
import type { Role } from "../room/types.js";

export const DMUC = NS.DMUC;
/** disco identity of a replica service. */
export const REPLICA_IDENTITY = { category: "conference", type: "dmuc-replica" } as const;

const ROLES: readonly Role[] = ["moderator", "participant", "visitor", "none"];

/**
 * A stanza carried inside a dmuc element, as a stanza again. A server's parser gives the embedded
 * stanza and its plain children the wrapper's namespace (Prosody writes it out explicitly), so a copy
 * sent on as is would be `<message xmlns='urn:xmpp:tmp:dmuc:0'>`, which no server delivers. Elements in
 * other namespaces (muc#user, delay...) keep theirs.
 */
export function unwrapStanza(el: Element): Element {
  const copy = cloneElement(el);
  const strip = (node: Element) => {
    if (node.attrs.xmlns !== DMUC && node !== copy) return;
    delete node.attrs.xmlns;
    for (const child of node.children) if (typeof child !== "string") strip(child);
  };
  if (copy.attrs.xmlns === DMUC || copy.attrs.xmlns === undefined) strip(copy);
  return copy;
}

function positiveInt(value: string | undefined): number | null {
  return value !== undefined && /^\d{1,9}$/.test(value) ? Number(value) : null;
}

function isFullJid(value: string | undefined): value is string {
  const jid = parseJid(value);
  return !!jid && jid.local !== null && jid.resource !== null;
}

function isBareJid(value: string | undefined): value is string {
  const jid = parseJid(value);
  return !!jid && jid.local !== null && jid.resource === null;
}

// <replicate domain keepalive history/>
export interface Replicate {
  domain: string;
  keepaliveSeconds: number;
  historyLimit: number;
}

export function buildReplicate(r: Replicate): Element {
  return xml("replicate", { xmlns: DMUC, domain: r.domain, keepalive: String(r.keepaliveSeconds), history: String(r.historyLimit) });
}

export function parseReplicate(el: Element | undefined): Replicate | null {
  if (!el?.is("replicate", DMUC)) return null;
  const domain = parseJid(el.attrs.domain);
  const keepaliveSeconds = positiveInt(el.attrs.keepalive);
  const historyLimit = positiveInt(el.attrs.history);
  if (!domain || domain.local !== null || domain.resource !== null || keepaliveSeconds === null || historyLimit === null) return null;
  return { domain: domain.domain, keepaliveSeconds, historyLimit };
}

// <config whois presencebroadcast/>
export interface ReplicaConfig {
  whois: "moderators" | "anyone";
  presenceBroadcast: Role[];
  /** Whether local users may go on talking among themselves during a netsplit (default true). */
  splitChat?: boolean;
}

export function buildConfig(c: ReplicaConfig): Element {
  return xml("config", { whois: c.whois, presencebroadcast: c.presenceBroadcast.join(" "), splitchat: c.splitChat === false ? "false" : undefined });
}

export function parseConfig(el: Element | undefined): ReplicaConfig | null {
  if (!el || el.name !== "config") return null;
  const whois = el.attrs.whois;
  if (whois !== "moderators" && whois !== "anyone") return null;
  const roles = (el.attrs.presencebroadcast ?? "").split(" ").filter((r) => r !== "");
  if (!roles.every((r) => (ROLES as string[]).includes(r))) return null;
  return { whois, presenceBroadcast: roles as Role[], splitChat: el.attrs.splitchat !== "false" };
}

// <state last><config/><presence/>...<message/>...<subject/></state>
export interface RoomState {
  last: boolean;
  config: ReplicaConfig | null;
  presences: Element[];
  history: Element[];
  subject: { text: string; nick: string | null; at: Date } | null;
}

export function buildState(s: RoomState): Element {
  return xml(
    "state",
    { xmlns: DMUC, last: s.last ? "true" : undefined },
    s.config ? buildConfig(s.config) : null,
    ...s.presences,
    ...s.history,
    s.subject ? xml("subject", { nick: s.subject.nick ?? undefined, stamp: s.subject.at.toISOString() }, s.subject.text) : null,
  );
}

export function parseState(el: Element | undefined): RoomState | null {
  if (!el?.is("state", DMUC)) return null;
  const configEl = el.getChild("config");
  const config = configEl ? parseConfig(configEl) : null;
  if (configEl && !config) return null;
  const subjectEl = el.getChild("subject");
  let subject: RoomState["subject"] = null;
  if (subjectEl) {
    const at = new Date(subjectEl.attrs.stamp ?? "");
    if (Number.isNaN(at.getTime())) return null;
    subject = { text: subjectEl.getText(), nick: subjectEl.attrs.nick ?? null, at };
  }
  return {
    last: el.attrs.last === "true",
    config,
    presences: el.getChildren("presence").map(unwrapStanza),
    history: el.getChildren("message").map(unwrapStanza),
    subject,
  };
}

// <enter jid nick silent><history/><status code/></enter>
export interface Enter {
  jid: string;
  nick: string;
  silent: boolean;
  history: Element | null;
  codes: number[];
}

export function buildEnter(e: Enter): Element {
  return xml(
    "enter",
    { xmlns: DMUC, jid: e.jid, nick: e.nick, silent: e.silent ? "true" : undefined },
    e.history,
    ...e.codes.map((code) => xml("status", { code: String(code) })),
  );
}

export function parseEnter(el: Element | undefined): Enter | null {
  if (!el?.is("enter", DMUC) || !isFullJid(el.attrs.jid) || !el.attrs.nick) return null;
  const codes = el.getChildren("status").map((s) => positiveInt(s.attrs.code));
  if (codes.some((c) => c === null)) return null;
  return { jid: el.attrs.jid, nick: el.attrs.nick, silent: el.attrs.silent === "true", history: el.getChild("history", NS.MUC) ?? el.getChild("history") ?? null, codes: codes as number[] };
}

// <leave jid><presence type=unavailable/></leave>
export interface Leave {
  jid: string;
  presence: Element | null;
}

export function buildLeave(l: Leave): Element {
  return xml("leave", { xmlns: DMUC, jid: l.jid }, l.presence);
}

export function parseLeave(el: Element | undefined): Leave | null {
  if (!el?.is("leave", DMUC) || !isFullJid(el.attrs.jid)) return null;
  const presence = el.getChild("presence");
  return { jid: el.attrs.jid, presence: presence ? unwrapStanza(presence) : null };
}

// <x><delay/></x> inside a broadcast message: the room's time, kept for history
export function buildBroadcastDelay(roomJid: string, at: Date, senderId?: string): Element {
  return xml("x", { xmlns: DMUC, id: senderId }, xml("delay", { xmlns: NS.DELAY, from: roomJid, stamp: at.toISOString() }));
}

export function parseBroadcastDelay(message: Element): Date | null {
  const stamp = message.getChild("x", DMUC)?.getChild("delay", NS.DELAY)?.attrs.stamp;
  const at = stamp ? new Date(stamp) : null;
  return at && !Number.isNaN(at.getTime()) ? at : null;
}

// Replica <-> server module: <relay>, <divert>/<undivert>, <directed>
export function buildRelay(stanza: Element): Element {
  return xml("relay", { xmlns: DMUC }, stanza);
}

export function parseRelay(el: Element | undefined): Element | null {
  if (!el?.is("relay", DMUC)) return null;
  const [inner, ...rest] = el.getChildElements();
  return inner && rest.length === 0 && ["message", "presence", "iq"].includes(inner.name) ? unwrapStanza(inner) : null;
}

/** `acks`: we acknowledge what the module hands us (<taken/>), so it keeps each stanza until then. */
export function buildDivert(roomJid: string, on = true, acks = on): Element {
  return xml(on ? "divert" : "undivert", { xmlns: DMUC, room: roomJid, acks: on && acks ? "true" : undefined });
}

// <diverted stream seq/> in a stanza the module hands us; <taken stream seq/> our cumulative answer
export interface DivertedReceipt {
  /** The module's numbering of one component connection. */
  stream: string;
  seq: number;
}

export function parseDiverted(stanza: Element): DivertedReceipt | null {
  const el = stanza.getChild("diverted", DMUC);
  const seq = positiveInt(el?.attrs.seq);
  return el?.attrs.stream && seq !== null && seq >= 1 ? { stream: el.attrs.stream, seq } : null;
}

export function buildTaken(r: DivertedReceipt): Element {
  return xml("taken", { xmlns: DMUC, stream: r.stream, seq: String(r.seq) });
}

export function parseDivert(el: Element | undefined): { room: string; on: boolean } | null {
  if (!el || el.attrs.xmlns !== DMUC || (el.name !== "divert" && el.name !== "undivert") || !isBareJid(el.attrs.room)) return null;
  return { room: el.attrs.room, on: el.name === "divert" };
}

/** Has this session (`jid`), or without `jid` any session of the server, available presence in the room? */
export function buildDirectedQuery(jid: string | null, roomJid: string): Element {
  return xml("directed", { xmlns: DMUC, jid: jid ?? undefined, room: roomJid });
}

export function parseDirectedQuery(el: Element | undefined): { jid: string | null; room: string } | null {
  if (!el?.is("directed", DMUC) || (el.attrs.jid !== undefined && !isFullJid(el.attrs.jid)) || !isBareJid(el.attrs.room)) return null;
  return { jid: el.attrs.jid ?? null, room: el.attrs.room };
}

export function buildDirectedAnswer(present: boolean): Element {
  return xml("directed", { xmlns: DMUC, present: present ? "true" : "false" });
}

export function parseDirectedAnswer(el: Element | undefined): boolean | null {
  if (!el?.is("directed", DMUC)) return null;
  return el.attrs.present === "true" ? true : el.attrs.present === "false" ? false : null;
}

// <netjoin since><config/><presence/>...<message/>...<subject/></netjoin>: what a healed replica missed
export interface Netjoin {
  since: Date;
  config: ReplicaConfig | null;
  presences: Element[];
  history: Element[];
  subject: RoomState["subject"];
  /**
   * Messages (by stanza-id) the primary delivered directly to some of the replica's sessions while the
   * replica was down: `<served id='STANZA-ID'><session jid='FULL'/>...</served>`. The replica delivers
   * them to its other sessions only. A netjoin whose catch-up is paged carries none (the pages do).
   */
  served: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * The stanza-id of the last message of the room the replica surely has (the split point): its catch-up
   * reads from the message after it, in the room's order (attribute `after`). Null: it surely has none
   * of what the room kept from before the split, the catch-up reads from `since` (`has-none='true'`).
   * Absent: not known (the catch-up reads after the replica's own last message).
   */
  after?: string | null;
}

function buildServed(served: ReadonlyMap<string, ReadonlySet<string>>): Element[] {
  return [...served].map(([id, sessions]) => xml("served", { id }, ...[...sessions].map((jid) => xml("session", { jid }))));
}

function parseServed(el: Element): Map<string, ReadonlySet<string>> | null {
  const served = new Map<string, ReadonlySet<string>>();
  for (const s of el.getChildren("served")) {
    const sessions = s.getChildren("session").map((e) => e.attrs.jid);
    if (!s.attrs.id || !sessions.every(isFullJid)) return null;
    served.set(s.attrs.id, new Set(sessions));
  }
  return served;
}

export function buildNetjoin(n: Netjoin): Element {
  const state = buildState({ last: true, config: n.config, presences: n.presences, history: n.history, subject: n.subject });
  const after = n.after === undefined ? {} : n.after === null ? { "has-none": "true" } : { after: n.after };
  return xml("netjoin", { xmlns: DMUC, since: n.since.toISOString(), ...after }, ...state.getChildElements(), ...buildServed(n.served));
}

export function parseNetjoin(el: Element | undefined): Netjoin | null {
  if (!el?.is("netjoin", DMUC)) return null;
  const since = new Date(el.attrs.since ?? "");
  if (Number.isNaN(since.getTime())) return null;
  const state = parseState(xml("state", { xmlns: DMUC }, ...el.getChildElements()));
  if (!state) return null;
  const served = parseServed(el);
  const after: string | null | undefined = el.attrs.after ?? (el.attrs["has-none"] === "true" ? null : undefined);
  if (!served || (typeof after === "string" && (after.length === 0 || after.length > 256))) return null;
  return { since, config: state.config, presences: state.presences, history: state.history, subject: state.subject, served, ...(after !== undefined && { after }) };
}

// The replica's answer: <netjoin><occupant jid nick/>...<message/>...<kick/>...</netjoin>
/** A local occupant a local moderator kicked during the split (the primary applies it at netjoin). */
export interface NetjoinKick {
  /** The kicked session (full JID). */
  jid: string;
  nick: string;
  /** The moderator's session (full JID). */
  actor: string;
  reason?: string;
}

export interface NetjoinAnswer {
  occupants: { jid: string; nick: string }[];
  /** Messages local users sent during the split, in order, each with origin-id and the original delay. */
  messages: Element[];
  /** Kicks of local occupants by local moderators during the split, in order. */
  kicks: NetjoinKick[];
}

export function buildNetjoinAnswer(a: NetjoinAnswer): Element {
  return xml(
    "netjoin",
    { xmlns: DMUC },
    ...a.occupants.map((o) => xml("occupant", { jid: o.jid, nick: o.nick })),
    ...a.messages,
    ...a.kicks.map((k) => xml("kick", { jid: k.jid, nick: k.nick, actor: k.actor }, k.reason ?? "")),
  );
}

export function parseNetjoinAnswer(el: Element | undefined): NetjoinAnswer | null {
  if (!el?.is("netjoin", DMUC)) return null;
  const occupants = el.getChildren("occupant").map((o) => ({ jid: o.attrs.jid ?? "", nick: o.attrs.nick ?? "" }));
  if (occupants.some((o) => !isFullJid(o.jid) || o.nick === "")) return null;
  const kicks = el.getChildren("kick").map((k): NetjoinKick => {
    const reason = k.getText();
    return { jid: k.attrs.jid ?? "", nick: k.attrs.nick ?? "", actor: k.attrs.actor ?? "", ...(reason !== "" && { reason }) };
  });
  if (kicks.some((k) => !isFullJid(k.jid) || !isFullJid(k.actor) || k.nick === "")) return null;
  return { occupants, messages: el.getChildren("message").map(unwrapStanza), kicks };
}

// <catchup since after?/> (replica -> room, iq get): the next page of what the replica missed, read from
// the room's history: the messages after the one with stanza-id `after` (the last the replica has), or,
// without `after`, those sent at or after `since`. The answer <catchup complete>message...</catchup>
// carries them in the room's order, each with its stanza-id and <delay/>; complete='true' on the last page;
// and, as the netjoin did, <served id><session jid/></served> for those of them some of the replica's
// sessions got directly from the room while the replica was down (the replica delivers them to the others only).
export interface CatchUpRequest {
  since: Date;
  after: string | null;
}

export function buildCatchUpRequest(r: CatchUpRequest): Element {
  return xml("catchup", { xmlns: DMUC, since: r.since.toISOString(), ...(r.after !== null && { after: r.after }) });
}

export function parseCatchUpRequest(el: Element | undefined): CatchUpRequest | null {
  if (!el?.is("catchup", DMUC)) return null;
  const since = new Date(el.attrs.since ?? "");
  const after = el.attrs.after ?? null;
  if (Number.isNaN(since.getTime()) || (after !== null && (after.length === 0 || after.length > 256))) return null;
  return { since, after };
}

export interface CatchUpPage {
  messages: Element[];
  complete: boolean;
  served: ReadonlyMap<string, ReadonlySet<string>>;
}

export function buildCatchUpPage(p: CatchUpPage): Element {
  return xml("catchup", { xmlns: DMUC, complete: String(p.complete) }, ...p.messages, ...buildServed(p.served));
}

export function parseCatchUpPage(el: Element | undefined): CatchUpPage | null {
  if (!el?.is("catchup", DMUC) || (el.attrs.complete !== "true" && el.attrs.complete !== "false")) return null;
  const served = parseServed(el);
  if (!served) return null;
  return { messages: el.getChildren("message").map(unwrapStanza), complete: el.attrs.complete === "true", served };
}

// <unreplicate/>: a replica leaves a room none of its users is in any more (docs/PROTOCOL.md)
export function buildUnreplicate(): Element {
  return xml("unreplicate", { xmlns: DMUC });
}

export function isUnreplicate(el: Element | undefined): boolean {
  return el?.name === "unreplicate" && el.attrs.xmlns === DMUC;
}

// <resync/>: a split replica that hears from the room again asks for netjoin
export function buildResync(): Element {
  return xml("resync", { xmlns: DMUC });
}

// <link stream seq ack acked probe/>: the reliable link's header (docs/PROTOCOL.md "The reliable link")
export interface LinkHeader {
  /** The sender's stream (one per link incarnation) and this stanza's number in it; absent on a bare ack. */
  stream?: string;
  seq?: number;
  /** The highest number of the receiver's stream `acked` that the sender has applied, all before it too. */
  ack?: number;
  acked?: string;
  /** The sender asks for an acknowledgement at once (keepalive, or a split link being probed). */
  probe: boolean;
}

const STREAM = /^[A-Za-z0-9_-]{1,64}$/;

export function buildLinkHeader(h: LinkHeader): Element {
  return xml("link", {
    xmlns: DMUC,
    stream: h.stream,
    seq: h.seq === undefined ? undefined : String(h.seq),
    ack: h.ack === undefined ? undefined : String(h.ack),
    acked: h.acked,
    probe: h.probe ? "true" : undefined,
  });
}

/** The header of a stanza on a link, or null when it has none or a malformed one. */
export function parseLinkHeader(stanza: Element): LinkHeader | null {
  const el = stanza.getChild("link", DMUC);
  if (!el) return null;
  const { stream, acked } = el.attrs;
  const seq = el.attrs.seq === undefined ? undefined : positiveInt(el.attrs.seq);
  const ack = el.attrs.ack === undefined ? undefined : positiveInt(el.attrs.ack);
  if (seq === null || ack === null || (seq !== undefined && (seq < 1 || stream === undefined))) return null;
  if ((ack === undefined) !== (acked === undefined)) return null;
  if ((stream !== undefined && !STREAM.test(stream)) || (acked !== undefined && !STREAM.test(acked))) return null;
  return { ...(stream !== undefined && { stream }), ...(seq !== undefined && { seq }), ...(ack !== undefined && { ack, acked }), probe: el.attrs.probe === "true" };
}

// <submit stamp>STANZA</submit>: a local user's stanza to the room, submitted by the replica in its own name
export interface Submit {
  stanza: Element;
  /** When the user sent it (the replica's time): the room's time of a message held through a split. */
  at: Date;
}

export function buildSubmit(s: Submit): Element {
  return xml("submit", { xmlns: DMUC, stamp: s.at.toISOString() }, s.stanza);
}

export function parseSubmit(stanza: Element): Submit | null {
  const el = stanza.getChild("submit", DMUC);
  if (!el) return null;
  const at = new Date(el.attrs.stamp ?? "");
  const [inner, ...rest] = el.getChildElements();
  if (Number.isNaN(at.getTime()) || !inner || rest.length > 0 || !["message", "presence", "iq"].includes(inner.name)) return null;
  return { stanza: unwrapStanza(inner), at };
}
