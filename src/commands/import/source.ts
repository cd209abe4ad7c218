// The old room, read over c2s as its owner with standard requests only (XEP-0045, XEP-0313, XEP-0030):
// what the import command needs to know about a room on any XMPP server.
import type { TLSSocket } from "node:tls";
import { client as xmppClient, type Client } from "@xmpp/client";
import xml, { type Element } from "@xmpp/xml";
import { parseForm, type FormField } from "../../xmpp/forms.js";
import { buildMamQuery, NS_MAM, parseMamFin, parseMamResult, type MamFin, type MamResult } from "../../xmpp/mam.js";
import { NS } from "../../xmpp/stanza.js";
import type { Jid } from "../../xmpp/jid.js";
import { parseDateTime } from "../../xmpp/mam.js";

const REQUEST_TIMEOUT_MS = 60_000;

/** A failure the operator must be told about in one sentence (and a non-zero exit). */
export class ImportError extends Error {}

export interface SourceAffiliation {
  jid: string;
  affiliation: "owner" | "admin" | "member" | "outcast";
  reason?: string;
  nick?: string;
}

export interface SourceSubject {
  text: string;
  nick: string | null;
  at: Date | null;
}

export interface SourcePage {
  results: MamResult[];
  fin: MamFin;
}

function isLoopback(address: string | undefined): boolean {
  return address !== undefined && (/^127\./.test(address) || address === "::1" || address === "::ffff:127.0.0.1" || /^::ffff:127\./.test(address));
}

function errorCondition(err: unknown): string | undefined {
  const { condition, name } = (err ?? {}) as { condition?: string; name?: string };
  return condition ?? name;
}

/**
 * Makes the client authenticate with PLAIN when the server offers it (the issue's model: PLAIN over
 * TLS, or to loopback): the SCRAM-SHA-1 of @xmpp/client 0.13 is refused by Prosody 0.12
 * (malformed-request), and 0.13 picks SCRAM first with no option to choose. The mechanism list is the
 * saslmechanisms factory that `sasl.use` returns.
 */
export function preferPlain(connection: Client): void {
  const sasl = (connection as unknown as { sasl: { use(name: string, mech: unknown): { _mechs: { name: string }[] } } }).sasl;
  const factory = sasl.use("X-UNUSED", function Unused() {});
  const mechs = factory._mechs.filter((m) => m.name !== "X-UNUSED");
  factory._mechs = [...mechs.filter((m) => m.name === "PLAIN"), ...mechs.filter((m) => m.name !== "PLAIN")];
}

export interface SourceOptions {
  owner: Jid;
  password: string;
  /** xmpp://HOST:PORT; undefined: found from the owner's domain as clients do. */
  server?: string;
  /** Allow authenticating without TLS to a non-loopback address. */
  insecure: boolean;
}

export class SourceRoom {
  private readonly mamResults = new Map<string, MamResult[]>();
  private roomStanzas: ((el: Element) => void) | null = null;

  private constructor(
    private readonly connection: Client,
    readonly roomJid: string,
    readonly ownerJid: string,
  ) {
    connection.on("stanza", (el: Element) => this.receive(el));
  }

  /** Logs in as the owner; a refused password or a plaintext stream to a remote host is an ImportError. */
  static async connect(roomJid: string, options: SourceOptions): Promise<SourceRoom> {
    const { owner } = options;
    if (owner.local === null) throw new ImportError(`--owner must be a user JID (user@domain), not ${owner.domain}`);
    let refusedPlaintext = false;
    const connection = xmppClient({
      ...(options.server !== undefined ? { service: options.server } : {}),
      domain: owner.domain,
      resource: owner.resource ?? `dmuc-import-${process.pid}`,
      credentials: (auth) => {
        const socket = connection.socket as (TLSSocket & { encrypted?: boolean }) | null;
        if (!socket?.encrypted && !isLoopback(socket?.remoteAddress) && !options.insecure) {
          refusedPlaintext = true;
          throw new ImportError("the server offers no TLS: refusing to send the password in the clear (use --insecure to allow it)");
        }
        return auth({ username: owner.local!, password: options.password });
      },
    });
    connection.reconnect.stop();
    preferPlain(connection);
    const errors: unknown[] = [];
    connection.on("error", (err: unknown) => errors.push(err));
    try {
      await connection.start();
    } catch (err) {
      await connection.stop().catch(() => undefined);
      if (refusedPlaintext) throw new ImportError("the server offers no TLS: refusing to send the password in the clear (use --insecure to allow it)");
      const condition = errorCondition(err) ?? errors.map(errorCondition).find((c) => c !== undefined);
      if (condition === "not-authorized" || condition === "SASLError") throw new ImportError(`login as ${owner.local}@${owner.domain} failed: wrong password or unknown user`);
      throw new ImportError(`could not log in as ${owner.local}@${owner.domain}${options.server ? ` at ${options.server}` : ""}: ${(err as Error).message}`);
    }
    return new SourceRoom(connection, roomJid, connection.jid!.toString());
  }

  async close(): Promise<void> {
    await this.connection.stop().catch(() => undefined);
  }

  private receive(el: Element): void {
    if (el.name === "message") {
      const result = parseMamResult(el);
      if (result?.queryId !== undefined && this.mamResults.has(result.queryId)) {
        this.mamResults.get(result.queryId)!.push(result);
        return;
      }
    }
    if ((el.attrs.from ?? "").split("/")[0] === this.roomJid) this.roomStanzas?.(el);
  }

  private async request(type: "get" | "set", payload: Element, what: string): Promise<Element> {
    try {
      return await this.connection.iqCaller.request(xml("iq", { type, to: this.roomJid }, payload), REQUEST_TIMEOUT_MS);
    } catch (err) {
      const condition = errorCondition(err);
      if (condition === "item-not-found" || condition === "remote-server-not-found") throw new ImportError(`no such room: ${this.roomJid}`);
      if (condition === "forbidden" || condition === "not-allowed" || condition === "not-authorized") {
        throw new ImportError(`${this.ownerJid.split("/")[0]} is not an owner of ${this.roomJid} (${what} was refused)`);
      }
      throw new ImportError(`${what} failed: ${(err as Error).message}`);
    }
  }

  /** disco#info: the room exists, and whether it says it has an archive. */
  async discover(): Promise<{ features: Set<string> }> {
    const info = await this.request("get", xml("query", { xmlns: NS.DISCO_INFO }), "disco#info");
    const features = new Set((info.getChild("query")?.getChildren("feature") ?? []).map((f) => f.attrs.var!));
    if (!features.has(NS.MUC)) throw new ImportError(`${this.roomJid} is not a multi-user chat room`);
    return { features };
  }

  /** The owner's configuration form (XEP-0045 §10.2), its fields as the server filled them. */
  async configuration(): Promise<FormField[]> {
    const reply = await this.request("get", xml("query", { xmlns: NS.MUC_OWNER }), "reading the configuration form");
    const form = parseForm(reply.getChild("query", NS.MUC_OWNER)?.getChild("x", NS.DATA_FORMS));
    if (!form) throw new ImportError(`${this.roomJid} sent no configuration form`);
    return form.fields;
  }

  /** One affiliation list (XEP-0045 §9.5, §10.5, §10.8, §9.8), with reasons and reserved nicks. */
  async affiliations(affiliation: SourceAffiliation["affiliation"]): Promise<SourceAffiliation[]> {
    const reply = await this.request("get", xml("query", { xmlns: NS.MUC_ADMIN }, xml("item", { affiliation })), `reading the ${affiliation} list`);
    return (reply.getChild("query", NS.MUC_ADMIN)?.getChildren("item") ?? [])
      .filter((item) => item.attrs.jid)
      .map((item) => {
        const entry: SourceAffiliation = { jid: item.attrs.jid!, affiliation };
        const reason = item.getChildText("reason");
        if (reason) entry.reason = reason;
        if (item.attrs.nick) entry.nick = item.attrs.nick;
        return entry;
      });
  }

  /**
   * The subject and who set it: only the subject message on entering says who, so the owner enters
   * without history under a throw-away nick and leaves again.
   */
  async subject(): Promise<SourceSubject> {
    const nick = `dmuc-import-${process.pid}`;
    const subject = new Promise<SourceSubject>((resolve, reject) => {
      const timer = setTimeout(() => reject(new ImportError(`${this.roomJid} sent no subject on entering`)), REQUEST_TIMEOUT_MS);
      this.roomStanzas = (el) => {
        if (el.name === "presence" && el.attrs.type === "error" && el.attrs.from === `${this.roomJid}/${nick}`) {
          clearTimeout(timer);
          reject(new ImportError(`could not enter ${this.roomJid} to read its subject: ${el.getChild("error")?.toString() ?? ""}`));
        }
        if (el.name !== "message" || el.attrs.type !== "groupchat" || el.getChild("subject") === undefined || el.getChild("body") !== undefined) return;
        clearTimeout(timer);
        const from = el.attrs.from ?? "";
        const slash = from.indexOf("/");
        const stamp = el.getChild("delay", NS.DELAY)?.attrs.stamp;
        resolve({ text: el.getChildText("subject") ?? "", nick: slash === -1 ? null : from.slice(slash + 1), at: stamp ? (parseDateTime(stamp) ?? null) : null });
      };
    });
    await this.connection.send(xml("presence", { to: `${this.roomJid}/${nick}` }, xml("x", { xmlns: NS.MUC }, xml("history", { maxstanzas: "0" }))));
    try {
      return await subject;
    } finally {
      this.roomStanzas = null;
      await this.connection.send(xml("presence", { to: `${this.roomJid}/${nick}`, type: "unavailable" }));
    }
  }

  /** One page of the archive, oldest first, after the message with archive id `after` (from the start without). */
  async archivePage(after: string | undefined, max: number): Promise<SourcePage> {
    const queryId = `import-${Math.random().toString(36).slice(2)}`;
    this.mamResults.set(queryId, []);
    try {
      const query = buildMamQuery({ queryId, flipPage: false, rsm: after === undefined ? { max } : { max, after } });
      let reply: Element;
      try {
        reply = await this.connection.iqCaller.request(xml("iq", { type: "set", to: this.roomJid }, query), REQUEST_TIMEOUT_MS);
      } catch (err) {
        const condition = errorCondition(err);
        if (condition === "service-unavailable" || condition === "feature-not-implemented") throw new ImportError(`${this.roomJid} has no archive (MAM); re-run with --no-archive to import the rest`);
        if (condition === "item-not-found" && after !== undefined) throw new ImportError(`the source archive no longer has the message ${after} this import stopped at`);
        if (condition === "forbidden") throw new ImportError(`the archive of ${this.roomJid} refused ${this.ownerJid.split("/")[0]}`);
        throw new ImportError(`reading the archive failed: ${(err as Error).message}`);
      }
      const fin = parseMamFin(reply.getChild("fin", NS_MAM));
      if (!fin) throw new ImportError(`${this.roomJid} answered an archive query without <fin/>`);
      return { results: this.mamResults.get(queryId)!, fin };
    } finally {
      this.mamResults.delete(queryId);
    }
  }

  /** Destroys the old room pointing to the new one (XEP-0045 §10.9), for servers that keep tombstones. */
  async destroy(alternate: string, reason: string): Promise<void> {
    await this.request("set", xml("query", { xmlns: NS.MUC_OWNER }, xml("destroy", { jid: alternate }, xml("reason", {}, reason))), "destroying the old room");
  }
}
