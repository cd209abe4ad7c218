// Drives a MucService through a conversation in unit tests: each stanza updates the state, and the
// stanzas sent in answer are returned. No IO: effects other than sends are kept for inspection.
import type { Element } from "@xmpp/xml";
import type { Effect } from "../../src/core/effects.js";
import { emptyServiceState, MucService, type ServiceSettings, type ServiceState } from "../../src/core/service.js";
import { createPlugins, type PluginOptions } from "../../plugins/index.js";
import type { AffiliationEntry } from "../../src/core/room/types.js";
import { parseXml } from "./xml.js";

const DISCO_ITEMS = "http://jabber.org/protocol/disco#items";

export class RoomDriver {
  readonly service: MucService;
  state: ServiceState = emptyServiceState();
  effects: Effect[] = [];
  private ids = 0;
  /** The time every stanza is handled at; tests move it forward. */
  now = new Date("2026-01-01T00:00:00Z");

  /** `settings` sets the other ServiceSettings, e.g. the DMUC2 replica's localDomain. */
  constructor(readonly domain = "chat.shakespeare.lit", admins: string[] = [], settings: Partial<ServiceSettings> = {}, plugins: Partial<PluginOptions> = {}) {
    this.service = new MucService(
      { domain, admins: new Set(admins), name: "Test MUC", ...settings },
      createPlugins({ maxHistoryMessages: 50, maxBodyChars: 1000, ratePerSecond: 10, burst: 1000, ...plugins }),
    );
  }

  /**
   * Handles one stanza (an element or XML text) and returns the stanzas sent in answer. Every other
   * server is a plain XMPP server here: the DMUC2 primary's discovery of a user's domain (disco#items
   * to that domain, while the user's entry waits for the answer) is answered at once with no items, and
   * is not among the stanzas returned.
   */
  send(stanza: Element | string): Element[] {
    const element = typeof stanza === "string" ? parseXml(stanza) : stanza;
    const outcome = this.service.handle(this.state, element, { now: this.now, newId: () => `id-${++this.ids}` });
    this.state = outcome.state;
    this.effects = outcome.effects;
    const sent = outcome.effects.flatMap((e) => (e.kind === "send" ? [e.stanza] : []));
    const probes = sent.filter((s) => this.isDomainProbe(s));
    for (const probe of probes) {
      const answered = this.send(`<iq type='result' id='${probe.attrs.id}' from='${probe.attrs.to}' to='${this.domain}'><query xmlns='${DISCO_ITEMS}'/></iq>`);
      this.effects = [...outcome.effects, ...this.effects];
      sent.push(...answered);
    }
    // The probes are between the service and the other servers: not what the test's users get.
    return sent.filter((s) => !probes.includes(s));
  }

  private isDomainProbe(stanza: Element): boolean {
    const to = stanza.attrs.to ?? "";
    return stanza.name === "iq" && stanza.attrs.type === "get" && stanza.attrs.from === this.domain && !/[@/]/.test(to) && !!stanza.getChild("query", DISCO_ITEMS);
  }

  /** Runs the service's timers at `now` and returns the stanzas sent. */
  tick(): Element[] {
    const outcome = this.service.tick(this.state, { now: this.now, newId: () => `id-${++this.ids}` });
    this.state = outcome.state;
    this.effects = outcome.effects;
    return outcome.effects.flatMap((e) => (e.kind === "send" ? [e.stanza] : []));
  }

  /** Tells the service that the component is connected (again), as the shell does, and returns what it sent. */
  online(): Element[] {
    const outcome = this.service.online(this.state, { now: this.now, newId: () => `id-${++this.ids}` });
    this.state = outcome.state;
    this.effects = outcome.effects;
    return outcome.effects.flatMap((e) => (e.kind === "send" ? [e.stanza] : []));
  }

  /** Moves the clock forward by `ms`, one tick per second as the shell runs them, and returns every stanza sent. */
  advance(ms: number): Element[] {
    const sent: Element[] = [];
    const end = this.now.getTime() + ms;
    while (this.now.getTime() < end) {
      this.now = new Date(Math.min(end, this.now.getTime() + 1000));
      sent.push(...this.tick());
    }
    return sent;
  }

  /** Enters `room` as `nick`; the first occupant creates the room and accepts the default configuration. */
  join(room: string, nick: string, from: string): Element[] {
    const created = !this.state.rooms.has(`${room}@${this.domain}`);
    const sent = this.send(`<presence from='${from}' to='${room}@${this.domain}/${nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
    if (created) {
      this.send(
        `<iq from='${from}' to='${room}@${this.domain}' id='create' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`,
      );
    }
    return sent;
  }

  /** Submits a room configuration form with the given field values. */
  configure(room: string, from: string, fields: Record<string, string>): Element[] {
    const body = Object.entries(fields)
      .map(([name, value]) => `<field var='${name}'><value>${value}</value></field>`)
      .join("");
    return this.send(
      `<iq from='${from}' to='${room}@${this.domain}' id='cfg' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>${body}</x></query></iq>`,
    );
  }

  /** Sets an affiliation directly in the state (tests that do not exercise the admin list). */
  affiliate(room: string, jid: string, entry: AffiliationEntry): void {
    const current = this.room(room);
    if (!current) throw new Error(`no room ${room}`);
    const rooms = this.state.rooms.with(current.jid, { ...current, affiliations: new Map(current.affiliations).set(jid, entry) });
    this.state = { ...this.state, rooms };
  }

  room(room: string) {
    return this.state.rooms.get(`${room}@${this.domain}`);
  }
}

/** The sent stanzas addressed to `to`. */
export const to = (stanzas: Element[], jid: string) => stanzas.filter((s) => s.attrs.to === jid);
