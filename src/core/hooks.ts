// Typed hooks, in the manner of Prosody's module events: handlers run by descending priority and the
// first one to return a value other than undefined ends the chain (a veto, or an answer).

type Handler<E, R> = (event: E) => R | undefined | void;

interface Registered<E, R> {
  handler: Handler<E, R>;
  priority: number;
  order: number;
}

export class Hooks<Events extends { [name: string]: { event: unknown; result: unknown } }> {
  private readonly handlers = new Map<keyof Events, Registered<unknown, unknown>[]>();
  private registrations = 0;

  on<K extends keyof Events>(name: K, handler: Handler<Events[K]["event"], Events[K]["result"]>, priority = 0): void {
    const list = this.handlers.get(name) ?? [];
    list.push({ handler: handler as Handler<unknown, unknown>, priority, order: this.registrations++ });
    // Higher priority first; among equals, registration order.
    list.sort((a, b) => b.priority - a.priority || a.order - b.order);
    this.handlers.set(name, list);
  }

  fire<K extends keyof Events>(name: K, event: Events[K]["event"]): Events[K]["result"] | undefined {
    const list = this.handlers.get(name);
    if (!list) return undefined;
    for (const { handler } of list) {
      const result = handler(event);
      if (result !== undefined) return result as Events[K]["result"];
    }
    return undefined;
  }

  has(name: keyof Events): boolean {
    return (this.handlers.get(name)?.length ?? 0) > 0;
  }
}
