// The one typed facade over xmpp.js's component connection (XEP-0114).
//
// We use the Component class of @xmpp/component-core rather than the @xmpp/component factory: the
// factory installs an IQ callee that answers every IQ its handlers do not return synchronously, and a
// fixed one-second reconnect. Our room engine answers through effects, possibly after a database
// commit, and reconnection here backs off and tells a refused secret apart from an absent server.
import { EventEmitter } from "node:events";
import { randomUUID } from "node:crypto";
import { Component } from "@xmpp/component-core";
import xmppDebug from "@xmpp/debug";
import type { Element } from "@xmpp/xml";
import type { Logger } from "../log.js";

export interface ConnectionOptions {
  service: string;
  domain: string;
  secret: string;
  log: Logger;
  traceStanzas?: boolean;
  /** Reconnection delays: first, then doubled up to max (milliseconds). */
  backoff?: { initialMs: number; maxMs: number };
}

/** Refusals that retrying with the same settings will not cure, and what to fix. */
function refusalMessage(condition: string, domain: string, service: string, firstBytes?: string): string {
  switch (condition) {
    case "not-authorized":
      return `the XMPP server at ${service} refused the component secret for ${domain}: DMUC_SECRET must equal its component_secret (Prosody) or password (ejabberd)`;
    case "host-unknown":
      return `the XMPP server at ${service} has no component configured for ${domain}: add Component "${domain}" (Prosody) or a hosts entry of the ejabberd_service listener, or fix DMUC_DOMAIN`;
    case "improper-addressing":
      return `the XMPP server at ${service} refused the component domain ${domain} (DMUC_DOMAIN)`;
    case "conflict":
      return `another component is already connected for ${domain} at ${service}`;
    case "client-port":
      return `${service} is the server's client port (it answered with a jabber:client stream), not its component port: set DMUC_XMPP_SERVICE to the component port (Prosody: component_ports, 5347 by default; ejabberd: the ejabberd_service listener)`;
    case "server-port":
      return `${service} is the server's server-to-server port, not its component port: set DMUC_XMPP_SERVICE to the component port (Prosody: component_ports, 5347 by default; ejabberd: the ejabberd_service listener)`;
    case "not-xmpp":
      return `${service} does not speak XMPP (it answered ${JSON.stringify(firstBytes ?? "")}): set DMUC_XMPP_SERVICE to the XMPP server's component port`;
    default:
      return `the XMPP server at ${service} closed the stream (${condition}) for ${domain}`;
  }
}

export class ComponentRefusedError extends Error {
  constructor(
    readonly condition: string,
    readonly domain: string,
    service: string,
    firstBytes?: string,
  ) {
    super(refusalMessage(condition, domain, service, firstBytes));
    this.name = "ComponentRefusedError";
  }
}

/** xmpp.js's errors may have an empty message (a TimeoutError, a parser error): name them anyway. */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === "TimeoutError") return "no answer in time";
  return err.message || err.name;
}

interface ConnectionEvents {
  stanza: [Element];
  online: [];
  offline: [];
}

function streamErrorCondition(err: unknown): string | undefined {
  const e = err as { name?: string; condition?: string };
  return e?.name === "StreamError" ? e.condition : undefined;
}

export class ComponentConnection extends EventEmitter<ConnectionEvents> {
  private entity: Component | null = null;
  private stopping = false;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private everOnline = false;
  private readonly backoff: { initialMs: number; maxMs: number };
  /** Our own IQs waiting for their answer, by id. */
  private readonly pending = new Map<string, { to: string; answer: (stanza: Element) => void }>();

  constructor(private readonly options: ConnectionOptions) {
    super();
    this.backoff = options.backoff ?? { initialMs: 500, maxMs: 30_000 };
  }

  get online(): boolean {
    return this.entity?.status === "online";
  }

  /**
   * Connects, retrying with backoff while the server is unreachable. Resolves once online; rejects
   * with ComponentRefusedError when the server refuses this component on the first attempt.
   */
  start(signal?: AbortSignal): Promise<void> {
    this.stopping = false;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener("abort", () => {
        this.off("online", resolve);
        void this.stop().finally(() => reject(signal.reason));
      }, { once: true });
      this.once("online", resolve);
      this.attempt().catch((err: unknown) => {
        // Later failures are retried by attempt() itself; only a refusal at start ends the program.
        if (err instanceof ComponentRefusedError && !this.everOnline) {
          this.off("online", resolve);
          this.stopping = true;
          reject(err);
        }
      });
    });
  }


  async stop(): Promise<void> {
    this.stopping = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const entity = this.entity;
    this.entity = null;
    if (entity && entity.status !== "offline") {
      try {
        await entity.stop();
      } catch (err) {
        this.options.log.debug("xmpp.stop_failed", { error: err });
      }
    }
  }

  /** Sends one stanza; while offline the stanza is dropped and counted (the server cannot route it). */
  send(stanza: Element): void {
    const entity = this.entity;
    if (!entity || entity.status !== "online") {
      this.options.log.warn("xmpp.send_while_offline", { name: stanza.name, to: stanza.attrs.to });
      return;
    }
    entity.send(stanza).catch((err: unknown) => this.options.log.warn("xmpp.send_failed", { error: err }));
  }

  /**
   * Writes stanzas already serialised (a whole fan-out) in one socket write. `traced` gives the
   * elements the text stands for, asked only when stanza tracing is on.
   */
  write(text: string, count: number, traced: () => Element[]): void {
    const entity = this.entity;
    if (!entity || entity.status !== "online") {
      this.options.log.warn("xmpp.send_while_offline", { stanzas: count });
      return;
    }
    entity.write(text).catch((err: unknown) => this.options.log.warn("xmpp.send_failed", { error: err, stanzas: count }));
    if (this.options.traceStanzas) for (const element of traced()) entity.emit("send", element);
  }

  /**
   * Sends an IQ and resolves with the answer (result or error) from its addressee, or rejects after
   * `timeoutMs`. The answer is taken here and not emitted as a stanza.
   */
  request(iq: Element, timeoutMs: number): Promise<Element> {
    const id = `q-${randomUUID()}`;
    iq.attrs.id = id;
    const to = String(iq.attrs.to);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer from ${to} in ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref(); // an unanswered request never keeps a stopping process alive
      this.pending.set(id, { to, answer: (el) => {
        clearTimeout(timer);
        resolve(el);
      } });
      this.send(iq);
    });
  }

  /** Whether `stanza` answers one of our requests (then it is handed to that request only). */
  private answered(stanza: Element): boolean {
    if (stanza.name !== "iq" || (stanza.attrs.type !== "result" && stanza.attrs.type !== "error")) return false;
    const waiting = this.pending.get(String(stanza.attrs.id));
    if (!waiting || String(stanza.attrs.from) !== waiting.to) return false;
    this.pending.delete(String(stanza.attrs.id));
    waiting.answer(stanza);
    return true;
  }

  private async attempt(): Promise<void> {
    const { service, domain, secret, log } = this.options;
    const entity = new Component({ service, domain });
    this.entity = entity;
    let refused: string | undefined;
    /** The first bytes the peer sent: tell a server of another protocol from a silent one. */
    let firstBytes: string | undefined;

    entity.on("error", (err: unknown) => {
      const condition = streamErrorCondition(err);
      if (condition) refused ??= condition;
      log.debug("xmpp.error", { error: describeError(err), condition });
    });
    entity.on("open", (header: Element) => {
      // A client or server-to-server port answers with its own namespace (and then host-unknown).
      const namespace = header.attrs.xmlns;
      if (namespace === "jabber:client" || namespace === "jabber:server") {
        refused = namespace === "jabber:client" ? "client-port" : "server-port";
        void entity.disconnect().catch(() => undefined);
        return;
      }
      entity.authenticate(header.attrs.id ?? "", secret).catch((err: unknown) => log.debug("xmpp.handshake_failed", { error: describeError(err) }));
    });
    entity.on("stanza", (stanza: Element) => {
      if (!this.answered(stanza)) this.emit("stanza", stanza);
    });
    if (this.options.traceStanzas) xmppDebug(entity, true);

    const settled = new Promise<void>((resolve, reject) => {
      entity.on("online", () => resolve());
      entity.on("disconnect", () => reject(refused ? new ComponentRefusedError(refused, domain, service) : new Error("connection closed")));
    });
    // Awaited below only when the connection gets that far: a failure before must not leave it unhandled.
    settled.catch(() => undefined);

    try {
      await entity.connect(service);
      // xmpp.js decodes each TCP read on its own (Connection._onData: data.toString("utf8")), so a
      // multi-byte UTF-8 character split across two reads became two U+FFFD, in broadcasts and in the
      // stored history (issue 16). With an encoding set, the socket decodes through a streaming
      // StringDecoder that keeps a character's first bytes until the rest arrives, and hands the parser
      // strings (toString() of a string is the string itself). Set before the stream opens: the server
      // says nothing before our stream header, so no byte is ever read undecoded.
      entity.socket?.setEncoding("utf8");
      // Stanzas are small and often answer other stanzas: with Nagle's algorithm on, a write waits for
      // the ACK of the previous one (a ~40 ms stall per message on loopback; bench/RESULTS.md).
      entity.socket?.setNoDelay(true);
      entity.socket?.once("data", (chunk: Buffer | string) => {
        firstBytes ??= chunk.toString().slice(0, 60);
        if (!/^\s*</.test(firstBytes)) refused ??= "not-xmpp";
      });
      await entity.open({ domain });
      await settled;
    } catch (err) {
      if (this.entity !== entity || this.stopping) return;
      const condition = refused ?? streamErrorCondition(err);
      const error = condition ? new ComponentRefusedError(condition, domain, service, firstBytes) : new Error(describeError(err) || "connection failed");
      entity.removeAllListeners("disconnect");
      void entity.stop().catch(() => undefined);
      this.scheduleRetry(error);
      throw error;
    }

    this.failures = 0;
    this.everOnline = true;
    log.info("xmpp.online", { domain, service });
    entity.on("disconnect", () => {
      if (this.entity !== entity || this.stopping) return;
      log.warn("xmpp.offline", { domain, refused });
      this.emit("offline");
      this.scheduleRetry(new Error("connection lost"));
    });
    this.emit("online");
  }

  private scheduleRetry(error: Error): void {
    if (this.stopping) return;
    const { initialMs, maxMs } = this.backoff;
    const delayMs = Math.min(maxMs, initialMs * 2 ** Math.min(this.failures, 16));
    this.failures += 1;
    const fields = { error: error.message, attempt: this.failures, retryInMs: delayMs };
    if (error instanceof ComponentRefusedError) this.options.log.error("xmpp.refused", fields);
    else this.options.log.warn("xmpp.unreachable", fields);
    if (error instanceof ComponentRefusedError && !this.everOnline) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.attempt().catch(() => undefined);
    }, delayMs);
  }
}
