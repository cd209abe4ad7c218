// A raw XEP-0114 component (xmpp.js's Component) driven by a test: it sends what the test builds and
// keeps what it receives, to check what a Prosody module does with a component's stanzas.
import { Component } from "@xmpp/component-core";
import type { Element } from "@xmpp/xml";
import type { StanzaPredicate } from "./client.js";
import type { ProsodyServer } from "./prosody.js";

export class TestComponent {
  private readonly received: Element[] = [];
  private readonly waiters = new Set<{ predicate: StanzaPredicate; resolve(el: Element): void }>();

  private constructor(
    readonly domain: string,
    private readonly raw: Component,
  ) {
    raw.on("error", () => undefined);
    raw.on("stanza", (el: Element) => {
      for (const waiter of this.waiters) {
        if (waiter.predicate(el)) {
          this.waiters.delete(waiter);
          return waiter.resolve(el);
        }
      }
      this.received.push(el);
    });
  }

  static async connect(server: ProsodyServer, domain: string, secret: string): Promise<TestComponent> {
    const raw = new Component({ service: server.componentService, domain });
    const component = new TestComponent(domain, raw);
    raw.on("open", (header: Element) => {
      raw.authenticate(header.attrs.id!, secret).catch((err: unknown) => raw.emit("error", err));
    });
    const mark = server.logMark();
    await raw.start();
    await server.waitForLog(/External component successfully authenticated/, 10_000, { from: mark });
    return component;
  }

  send(el: Element): Promise<void> {
    return this.raw.send(el);
  }

  /** The oldest received stanza that matches (waiting for it if needed); it is consumed. */
  waitFor(predicate: StanzaPredicate, timeoutMs = 10_000, what = "a stanza"): Promise<Element> {
    const index = this.received.findIndex(predicate);
    if (index >= 0) return Promise.resolve(this.received.splice(index, 1)[0]!);
    return new Promise((resolve, reject) => {
      const waiter = { predicate, resolve: (el: Element) => (clearTimeout(timer), resolve(el)) };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`${this.domain}: ${what} did not arrive within ${timeoutMs} ms; inbox: ${this.received.join("\n")}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  async stop(): Promise<void> {
    await this.raw.stop().catch(() => undefined);
  }
}
