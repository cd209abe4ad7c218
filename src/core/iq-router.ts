// Routes IQ get/set requests by (type, payload namespace, payload name), like xmpp.js's iq callee, but
// synchronous and pure: a handler returns the result payload (or null for an empty result) and throws
// StanzaError to answer with an error.
import type { Element } from "@xmpp/xml";

export type IqType = "get" | "set";

/**
 * Returned by a handler whose answer comes later through an effect (an archive query answered after
 * the shell has read the rows): the router's caller then sends no result itself.
 */
export const REPLY_LATER = Symbol("reply later");

export type IqHandler<C> = (context: C, payload: Element) => Element | null | typeof REPLY_LATER;

export class IqRouter<C> {
  private readonly routes = new Map<string, IqHandler<C>>();

  private static key(type: IqType, xmlns: string, name: string): string {
    return `${type} ${xmlns} ${name}`;
  }

  get(xmlns: string, name: string, handler: IqHandler<C>): void {
    this.add("get", xmlns, name, handler);
  }

  set(xmlns: string, name: string, handler: IqHandler<C>): void {
    this.add("set", xmlns, name, handler);
  }

  find(type: IqType, payload: Element): IqHandler<C> | undefined {
    return this.routes.get(IqRouter.key(type, payload.attrs.xmlns ?? "", payload.name));
  }

  /** Namespaces with at least one route: what disco#info can advertise. */
  namespaces(): string[] {
    return [...new Set([...this.routes.keys()].map((key) => key.split(" ")[1] ?? ""))];
  }

  private add(type: IqType, xmlns: string, name: string, handler: IqHandler<C>): void {
    const key = IqRouter.key(type, xmlns, name);
    if (this.routes.has(key)) throw new Error(`two handlers for IQ ${key}`);
    this.routes.set(key, handler);
  }
}
