// A user's XMPP client in the whole-core DMUC2 simulation (test/helpers/core-sim.ts): it sends what a
// person does in a room (enter, leave, change nick, talk, write privately, kick) and keeps what it was
// shown: its own stays in the room, the roster as the room's presences painted it, every groupchat
// message and private message it received, the errors it got. The simulation's invariants are checked
// against these views, as users see the room, never against the gateways' internal state.
import xml, { type Element } from "@xmpp/xml";
import { NS } from "../../src/xmpp/stanza.js";

export const ROOM = "wallops@dmuc.avalon.test";

/** One continuous presence in the room, as the user saw it: from its own presence (110) to its own unavailable. */
export interface Stay {
  /** When the self-presence arrived (ms). */
  readonly start: number;
  end: number | null;
  /** Bodies of the groupchat messages received live (not as join history) during the stay, in order. */
  readonly live: string[];
}

export interface Delivery {
  readonly body: string;
  readonly at: number;
}

type Status = "out" | "entering" | "in" | "leaving";

export class Client {
  status: Status = "out";
  /** When a moderator asked for this user's kick, until the user hears it (null: no kick pending). */
  kickedAt: number | null = null;
  /** When the user last sent an entry (null: never). */
  enteredAt: number | null = null;
  nick: string;
  private pendingNick: string | null = null;
  private nickChanges = 0;
  private ids = 0;
  readonly stays: Stay[] = [];
  /** Nick -> the <show/> of its last presence (null: available). */
  readonly roster = new Map<string, string | null>();
  /** Between the self-presence and the subject: the join history. */
  private historyPhase = false;
  /** Private messages received (bodies), with the sender's nick. */
  readonly privates: { body: string; from: string; at: number }[] = [];
  /** Ids of the stanzas this user sent that came back as errors, with the condition. */
  readonly errors = new Map<string, string>();
  /** What the user saw that it must never see (a message while out of the room...). */
  readonly oddities: string[] = [];
  /** Groupchat messages this user sent: id -> body, and when. */
  readonly said = new Map<string, { body: string; at: number }>();
  /** Private messages this user sent: body -> recipient user name. */
  readonly wrotePrivately = new Map<string, { to: string; toNick: string; at: number; id: string }>();

  constructor(
    readonly name: string,
    readonly host: string,
    /** How stanzas leave this client: to its server, over c2s. */
    private readonly out: (client: Client, stanza: Element) => void,
  ) {
    this.nick = name[0]!.toUpperCase() + name.slice(1);
  }

  get changingNick(): boolean {
    return this.pendingNick !== null;
  }

  get jid(): string {
    return `${this.name}@${this.host}/res`;
  }

  private id(): string {
    return `${this.name}-${++this.ids}`;
  }

  enter(): boolean {
    if (this.status !== "out") return false;
    this.status = "entering";
    this.out(this, xml("presence", { from: this.jid, to: `${ROOM}/${this.nick}`, id: this.id() }, xml("x", { xmlns: NS.MUC })));
    return true;
  }

  leave(): boolean {
    if (this.status !== "in") return false;
    this.status = "leaving";
    this.out(this, xml("presence", { from: this.jid, to: `${ROOM}/${this.nick}`, type: "unavailable", id: this.id() }));
    return true;
  }

  changeNick(): boolean {
    if (this.status !== "in" || this.pendingNick) return false;
    this.pendingNick = `${this.nick.replace(/\d+$/, "")}${++this.nickChanges}`;
    this.out(this, xml("presence", { from: this.jid, to: `${ROOM}/${this.pendingNick}`, id: this.id() }));
    return true;
  }

  say(body: string, now: number): boolean {
    if (this.status !== "in") return false;
    const id = this.id();
    this.said.set(id, { body, at: now });
    this.out(this, xml("message", { from: this.jid, to: ROOM, type: "groupchat", id }, xml("body", {}, body)));
    return true;
  }

  /** A private message to the occupant `nick` (as this user's roster shows it), who is user `toName`. */
  writePrivately(toName: string, nick: string, body: string, now: number): boolean {
    if (this.status !== "in" || !this.roster.has(nick) || nick === this.nick) return false;
    const id = this.id();
    this.wrotePrivately.set(body, { to: toName, toNick: nick, at: now, id });
    this.out(this, xml("message", { from: this.jid, to: `${ROOM}/${nick}`, type: "chat", id }, xml("body", {}, body), xml("x", { xmlns: `${NS.MUC_USER}` })));
    return true;
  }

  /** As a moderator: kick the occupant `nick` (XEP-0045 §8.2). */
  kick(nick: string): boolean {
    if (this.status !== "in" || !this.roster.has(nick) || nick === this.nick) return false;
    this.out(
      this,
      xml("iq", { from: this.jid, to: ROOM, type: "set", id: this.id() }, xml("query", { xmlns: NS.MUC_ADMIN }, xml("item", { nick, role: "none" }, xml("reason", {}, "simulated")))),
    );
    return true;
  }

  /** A stanza from the user's server. */
  receive(stanza: Element, now: number): void {
    const from = stanza.attrs.from ?? "";
    if (stanza.name === "iq") return this.onIq(stanza);
    if (stanza.attrs.type === "error") {
      const condition = stanza.getChild("error")?.children.find((c): c is Element => typeof c !== "string" && c.attrs.xmlns === NS.STANZAS)?.name ?? "?";
      if (stanza.attrs.id) this.errors.set(stanza.attrs.id, condition);
      if (stanza.name === "presence" && from.startsWith(`${ROOM}/`)) this.onPresenceError(from.slice(ROOM.length + 1));
      return;
    }
    if (!from.startsWith(`${ROOM}`)) return;
    if (stanza.name === "presence") return this.onPresence(stanza, from.slice(ROOM.length + 1), now);
    if (stanza.name !== "message") return;
    const body = stanza.getChildText("body");
    if (stanza.attrs.type === "chat" || stanza.attrs.type === undefined || stanza.attrs.type === "normal") {
      if (body !== null && from.includes("/")) {
        if (this.status === "out") this.oddities.push(`private message ${body} while out of the room`);
        this.privates.push({ body, from: from.slice(ROOM.length + 1), at: now });
      }
      return;
    }
    if (stanza.attrs.type !== "groupchat") return;
    if (stanza.getChild("subject")) {
      this.historyPhase = false;
      return;
    }
    if (body === null) return;
    if (this.historyPhase) return;
    const stay = this.currentStay();
    if (!stay || this.status === "out" || this.status === "entering") {
      this.oddities.push(`groupchat ${body} while ${this.status}`);
      return;
    }
    stay.live.push(body);
  }

  private currentStay(): Stay | undefined {
    const last = this.stays[this.stays.length - 1];
    return last && last.end === null ? last : undefined;
  }

  private onIq(stanza: Element): void {
    const type = stanza.attrs.type;
    if (type === "result" || type === "error") return;
    // A client answers pings; anything else it does not know gets service-unavailable, as from a real client.
    const ping = stanza.getChild("ping", NS.PING);
    const reply = ping
      ? xml("iq", { type: "result", id: stanza.attrs.id, from: this.jid, to: stanza.attrs.from })
      : xml("iq", { type: "error", id: stanza.attrs.id, from: this.jid, to: stanza.attrs.from }, xml("error", { type: "cancel" }, xml("service-unavailable", { xmlns: NS.STANZAS })));
    this.out(this, reply);
  }

  private onPresenceError(nick: string): void {
    if (this.status === "entering" && nick === this.nick) this.status = "out";
    else if (this.pendingNick === nick) this.pendingNick = null;
  }

  private onPresence(stanza: Element, nick: string, now: number): void {
    const x = stanza.getChild("x", NS.MUC_USER);
    const codes = new Set((x?.getChildren("status") ?? []).map((s) => s.attrs.code));
    const unavailable = stanza.attrs.type === "unavailable";
    const own = codes.has("110");
    if (this.status === "out") {
      this.oddities.push(`presence of ${nick}${unavailable ? " (unavailable)" : ""} while out of the room`);
      return;
    }
    if (unavailable) {
      this.roster.delete(nick);
      if (!own) return;
      if (codes.has("303")) {
        // Our nick change: the new nick's presence follows.
        const next = x?.getChild("item")?.attrs.nick;
        if (next) this.nick = next;
        this.pendingNick = null;
        return;
      }
      if (nick !== this.nick) this.oddities.push(`own unavailable for ${nick}, not our nick ${this.nick}`);
      this.status = "out";
      this.pendingNick = null;
      this.kickedAt = null;
      this.roster.clear();
      const stay = this.currentStay();
      if (stay) stay.end = now;
      return;
    }
    this.roster.set(nick, stanza.getChildText("show"));
    if (!own) return;
    if (this.status === "entering") {
      if (nick !== this.nick) this.oddities.push(`self-presence for ${nick}, entered as ${this.nick}`);
      this.status = "in";
      this.historyPhase = true;
      this.stays.push({ start: now, end: null, live: [] });
    } else if (nick !== this.nick) {
      this.oddities.push(`self-presence for ${nick} while ${this.status} as ${this.nick}`);
    }
  }
}
