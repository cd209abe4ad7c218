// The send path between the effect runner and the component socket (issue 14). Stanzas sent in one
// turn of the event loop (a room broadcast, a batch of committed units) are gathered, grouped by
// template (stanzas identical but for their `to`), serialised once per group with each `to` spliced in,
// and written to the socket in one write. When the XMPP server offers multicast (XEP-0033, discovered
// with disco#info on its domain), the copies of a group for the server's own users become one stanza
// with an <addresses/> list that the server fans out itself.
import type { Element } from "@xmpp/xml";
import type { Logger } from "../../log.js";
import { groupByTemplate, serialiseGroup, spliced } from "../../xmpp/fanout-serialiser.js";
import { isUserOf, multicastDiscoRequest, multicastStanza, offersMulticast } from "../../xmpp/multicast.js";

/** What the writer needs of the component connection. */
export interface StanzaSink {
  write(text: string, count: number, traced: () => Element[]): void;
  request(iq: Element, timeoutMs: number): Promise<Element>;
}

const DISCO_TIMEOUT_MS = 10_000;
/** Fewer local copies than this go one by one: an <addresses/> list costs more than it saves. */
const MIN_MULTICAST_RECIPIENTS = 2;

export class StanzaWriter {
  private pending: Element[] = [];
  private scheduled = false;
  /** The server's multicast service (its domain) once disco#info said it offers XEP-0033. */
  private multicastService: string | null = null;

  constructor(
    private readonly sink: StanzaSink,
    /** The component's domain (the `from` of the disco request). */
    private readonly componentDomain: string,
    /** The XMPP server's domain: its users get multicast copies. */
    private readonly serverDomain: string,
    private readonly log: Logger,
  ) {}

  /** Queues one stanza; the queue is written at the end of the current turn of the event loop. */
  send = (stanza: Element): void => {
    this.pending.push(stanza);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => this.flush());
  };

  /**
   * Asks the server (after each connection: a restarted server may have lost or gained the module)
   * whether it offers multicast; until it answers yes, every copy goes one by one.
   */
  async discover(): Promise<void> {
    this.multicastService = null;
    try {
      const answer = await this.sink.request(multicastDiscoRequest(this.componentDomain, this.serverDomain), DISCO_TIMEOUT_MS);
      if (!offersMulticast(answer)) {
        this.log.info("delivery.multicast_absent", { server: this.serverDomain });
        return;
      }
      this.multicastService = this.serverDomain;
      this.log.info("delivery.multicast_available", { server: this.serverDomain });
    } catch (err) {
      this.log.warn("delivery.multicast_discovery_failed", { server: this.serverDomain, error: err });
    }
  }

  /**
   * Watches what the server sends: an error from the server's domain itself to a message or presence
   * is the refusal of a multicast (we send it nothing else), e.g. `dmuc_multicast_component` names
   * another component. Multicast is then off until the next connection, so that one refused broadcast
   * does not become all of them.
   */
  notice = (stanza: Element): void => {
    if (!this.multicastService || stanza.attrs.type !== "error" || stanza.attrs.from !== this.multicastService) return;
    if (stanza.name !== "message" && stanza.name !== "presence") return;
    this.multicastService = null;
    const condition = stanza.getChild("error")?.getChildElements()[0]?.name;
    this.log.error("delivery.multicast_refused", { server: this.serverDomain, condition, note: "sending one stanza per recipient until the next connection; check dmuc_multicast_component on the server" });
  };

  /** Forgets multicast support (the connection is lost: the next server may not offer it). */
  reset(): void {
    this.multicastService = null;
  }

  private flush(): void {
    const stanzas = this.pending;
    this.pending = [];
    this.scheduled = false;
    const service = this.multicastService;
    let text = "";
    let count = 0;
    /** What the text stands for, for stanza tracing: the multicast stanzas and the copies' templates. */
    const traced: Element[] = [];
    for (const group of groupByTemplate(stanzas)) {
      const template = group.template;
      const local = service && template ? group.recipients.filter((to) => isUserOf(to, service)) : [];
      if (!service || !template || local.length < MIN_MULTICAST_RECIPIENTS) {
        text += serialiseGroup(group);
        count += group.recipients.length;
        traced.push(template ? template.stanza : group.single!);
        continue;
      }
      const multicast = multicastStanza(template.stanza, service, local);
      text += multicast.toString();
      traced.push(multicast);
      for (const to of group.recipients) {
        if (isUserOf(to, service)) continue;
        text += spliced(template, to);
        count++;
      }
      count++;
    }
    this.sink.write(text, count, () => traced);
  }
}
