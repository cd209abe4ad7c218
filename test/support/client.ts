// An XMPP user for black-box tests (@xmpp/client over plaintext TCP), with an inbox: every stanza
// received is kept until a test consumes it, so a test can never miss one that arrived before it
// started waiting, and can check at the end that nothing unexpected is left.
// Incoming iq get/set land in the inbox too, but xmpp.js has already answered them (service-unavailable,
// unless a handler was registered with raw.iqCallee): a client never leaves an IQ unanswered.
import { randomBytes } from "node:crypto";
import { client as xmppClient, type Client } from "@xmpp/client";
import xml, { type Element } from "@xmpp/xml";
import { preferPlain } from "../../src/commands/import/source.js";

const CONNECT_TIMEOUT_MS = 10_000;
const NS_PING = "urn:xmpp:ping";

export interface ClientOptions {
  /** xmpp://HOST:c2sPort (ProsodyServer.c2sService). */
  service: string;
  /** The user's server (Prosody's VirtualHost). */
  domain: string;
  username: string;
  /** Default "test". */
  resource?: string;
  /** Any password works with the test Prosody. Default "password". */
  password?: string;
}

export type StanzaPredicate = (el: Element) => boolean;

/** An IQ answered with type="error"; `stanza` is the whole reply. */
export class IqError extends Error {
  constructor(
    readonly stanza: Element,
    /** The defined condition, e.g. "item-not-found". */
    readonly condition: string | undefined,
  ) {
    super(`IQ error ${condition ?? "(no condition)"}: ${stanza.toString()}`);
    this.name = "IqError";
  }
}

export interface TestClient {
  /** The full JID the server bound. */
  readonly jid: string;
  readonly bareJid: string;
  /** Whether the stream is still up (false after stop() or once the server closed it). */
  readonly online: boolean;
  /** Resolves when the connection has closed, for whatever reason. */
  readonly closed: Promise<void>;
  /** The xmpp.js client, for what this facade does not cover. */
  readonly raw: Client;
  send(el: Element): Promise<void>;
  /** Initial presence (not sent on connect: tests decide when a user becomes available). */
  sendPresence(el?: Element): Promise<void>;
  /** Sends an iq get/set; resolves with the result, rejects with IqError or on timeout. Replies never reach the inbox. */
  request(iq: Element, timeoutMs?: number): Promise<Element>;
  /** The oldest received, unconsumed stanza that matches (waiting for it if needed); it is consumed. */
  waitFor(predicate: StanzaPredicate, timeoutMs?: number, what?: string): Promise<Element>;
  /**
   * Deterministic "what else arrived": pings `via` (an entity that answers IQs in order, such as the
   * MUC service or the server) and, once the reply is in, takes everything from the inbox. Whatever
   * `via` sent to this client before answering has arrived by then (one stream, in order). Default
   * `via`: the user's own server, a barrier only for what that server itself sends.
   */
  drain(via?: string): Promise<Element[]>;
  /**
   * Waits `ms`, then takes everything from the inbox. Time-based: prefer drain(). Kept for the cases
   * with no entity to round-trip through (e.g. "a remote server sent nothing").
   */
  collect(ms: number): Promise<Element[]>;
  /** The unconsumed stanzas, oldest first (not consumed by looking). */
  inbox(): readonly Element[];
  stop(): Promise<void>;
}

/** A predicate on name and attributes, e.g. stanza("message", { from: "room@muc/Nick", type: "groupchat" }). */
export function stanza(name: string, attrs: Record<string, string> = {}, child?: { name: string; xmlns?: string }): StanzaPredicate {
  return (el) =>
    el.name === name &&
    Object.entries(attrs).every(([k, v]) => el.attrs[k] === v) &&
    (!child || el.getChild(child.name, child.xmlns) !== undefined);
}

interface Waiter {
  predicate: StanzaPredicate;
  resolve(el: Element): void;
  reject(err: unknown): void;
}

class Connected implements TestClient {
  private readonly received: Element[] = [];
  private readonly waiters = new Set<Waiter>();
  private readonly pending = new Map<string, (reply: Element) => void>();
  private isOnline = true;
  readonly closed: Promise<void>;
  private readonly describeClosed: () => string;

  constructor(
    readonly raw: Client,
    readonly jid: string,
  ) {
    let markClosed!: () => void;
    this.closed = new Promise((resolve) => (markClosed = resolve));
    this.describeClosed = () => `${jid}: the connection is closed`;
    raw.on("stanza", (el: Element) => this.onStanza(el));
    raw.on("status", (status: string) => {
      if (status !== "disconnect" && status !== "offline") return;
      this.isOnline = false;
      markClosed();
    });
  }

  get bareJid(): string {
    return this.jid.split("/")[0]!;
  }
  get online(): boolean {
    return this.isOnline;
  }

  private onStanza(el: Element): void {
    const id = el.attrs.id;
    const reply = el.name === "iq" && (el.attrs.type === "result" || el.attrs.type === "error") && id !== undefined;
    const requester = reply ? this.pending.get(id) : undefined;
    if (requester) return requester(el);
    for (const waiter of this.waiters) {
      let matched: boolean;
      try {
        matched = waiter.predicate(el);
      } catch (err) {
        waiter.reject(err); // a broken predicate fails its test, not the connection
        continue;
      }
      if (matched) {
        this.waiters.delete(waiter);
        return waiter.resolve(el);
      }
    }
    this.received.push(el);
  }

  send(el: Element): Promise<void> {
    return this.raw.send(el);
  }

  sendPresence(el: Element = xml("presence")): Promise<void> {
    return this.raw.send(el);
  }

  request(iq: Element, timeoutMs = 5_000): Promise<Element> {
    const id = (iq.attrs.id ??= `req-${randomBytes(6).toString("hex")}`);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.jid}: no reply within ${timeoutMs} ms to ${iq.toString()}`));
      }, timeoutMs);
      this.pending.set(id, (reply) => {
        clearTimeout(timer);
        this.pending.delete(id);
        if (reply.attrs.type === "result") return resolve(reply);
        const condition = reply.getChild("error")?.getChildElements().find((c) => c.attrs.xmlns === "urn:ietf:params:xml:ns:xmpp-stanzas");
        reject(new IqError(reply, condition?.name));
      });
      this.raw.send(iq).catch((err: unknown) => {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(err);
      });
    });
  }

  waitFor(predicate: StanzaPredicate, timeoutMs = 5_000, what = "a matching stanza"): Promise<Element> {
    let index: number;
    try {
      index = this.received.findIndex(predicate);
    } catch (err) {
      return Promise.reject(err);
    }
    if (index >= 0) return Promise.resolve(this.received.splice(index, 1)[0]!);
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        this.waiters.delete(waiter);
        clearTimeout(timer);
        const left = this.received.map((el) => `  ${el.toString()}`).join("\n") || "  (none)";
        reject(new Error(`${this.jid}: ${why} while waiting for ${what}; unconsumed stanzas:\n${left}`));
      };
      const waiter: Waiter = {
        predicate,
        resolve: (el) => {
          clearTimeout(timer);
          resolve(el);
        },
        reject: (err) => {
          this.waiters.delete(waiter);
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
      this.waiters.add(waiter);
      // Nothing can arrive on a closed stream: fail now rather than at the timeout.
      void this.closed.then(() => this.waiters.has(waiter) && fail(this.describeClosed()));
    });
  }

  async drain(via?: string): Promise<Element[]> {
    const to = via ?? this.bareJid.split("@")[1]!;
    try {
      await this.request(xml("iq", { type: "get", to }, xml("ping", { xmlns: NS_PING })));
    } catch (err) {
      if (!(err instanceof IqError)) throw err; // an error reply is as good a barrier as a result
    }
    return this.received.splice(0);
  }

  async collect(ms: number): Promise<Element[]> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.received.splice(0);
  }

  inbox(): readonly Element[] {
    return [...this.received];
  }

  async stop(): Promise<void> {
    if (this.raw.status === "offline") return;
    try {
      await this.raw.stop();
    } catch {
      // the server may already have closed the stream (e.g. Prosody was stopped)
    }
  }
}

/** Logs in (PLAIN, no reconnection). Initial presence is not sent; see sendPresence(). */
export async function connectClient(options: ClientOptions): Promise<TestClient> {
  const { service, domain, username, resource = "test", password = "password" } = options;
  const raw = xmppClient({
    service,
    domain,
    resource,
    credentials: (auth) => auth({ username, password }),
  });
  // A test client must see a lost connection, not hide it by reconnecting.
  raw.reconnect.stop();
  // Servers with real accounts offer SCRAM-SHA-1 too, which this library version gets wrong.
  preferPlain(raw);
  // Like every mainstream client (Gajim, Conversations, Dino, Converse.js, poezio, profanity), it
  // answers XEP-0199 pings: rooms verify their occupants with them.
  raw.iqCallee.get(NS_PING, "ping", () => true);
  const errors: unknown[] = [];
  raw.on("error", (err: unknown) => errors.push(err)); // an EventEmitter 'error' without listener would crash the run

  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
    });
    const jid = await Promise.race([raw.start(), timeout]);
    // The socket must not keep the test process alive if a test forgets stop(): every wait in this
    // file has its own timer, which keeps the loop alive while a test waits.
    raw.socket?.unref();
    return new Connected(raw, jid.toString());
  } catch (err) {
    await raw.stop().catch(() => undefined);
    const detail = errors.length > 0 ? ` (${errors.map(String).join("; ")})` : "";
    throw new Error(`${username}@${domain}/${resource} could not log in to ${service}: ${String(err)}${detail}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
