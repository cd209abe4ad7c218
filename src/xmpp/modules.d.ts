// Typings for the parts of xmpp.js (JavaScript, untyped) that the gateway uses.
// One facade over these lives in ./connection.ts; the rest of the code sees only `Element`.

declare module "@xmpp/xml" {
  import { EventEmitter } from "node:events";

  export type Attrs = Record<string, string | undefined>;
  export type Child = Element | string;

  export class Element {
    constructor(name: string, attrs?: Attrs);
    name: string;
    attrs: Record<string, string>;
    children: Child[];
    parent: Element | null;
    is(name: string, xmlns?: string): boolean;
    getName(): string;
    getNS(): string | undefined;
    getAttr(name: string): string | undefined;
    getChild(name: string, xmlns?: string): Element | undefined;
    getChildren(name: string, xmlns?: string): Element[];
    getChildElements(): Element[];
    getChildText(name: string, xmlns?: string): string | null;
    getText(): string;
    text(value?: string): string;
    append(...children: Child[]): Element;
    prepend(...children: Child[]): Element;
    c(name: string, attrs?: Attrs): Element;
    t(text: string): Element;
    up(): Element;
    remove(el: Element | string, xmlns?: string): Element;
    toString(): string;
  }

  export class Parser extends EventEmitter {
    write(data: string): void;
    end(data?: string): void;
  }

  export class XMLError extends Error {}

  interface xml {
    (name: string, attrs?: Attrs | null, ...children: (Child | Child[] | null | undefined | false)[]): Element;
    Element: typeof Element;
    Parser: typeof Parser;
    XMLError: typeof XMLError;
    escapeXML(s: string): string;
    escapeXMLText(s: string): string;
  }
  const xml: xml;
  export default xml;
}

declare module "@xmpp/xml/lib/parse.js" {
  import type { Element } from "@xmpp/xml";
  export default function parse(data: string): Element;
}

declare module "@xmpp/jid" {
  export class JID {
    constructor(local: string | undefined, domain: string, resource?: string);
    local: string;
    domain: string;
    resource: string;
    bare(): JID;
    toString(unescape?: boolean): string;
    equals(other: JID): boolean;
    getLocal(unescape?: boolean): string;
    getDomain(): string;
    getResource(): string;
  }
  interface jid {
    (address: string): JID;
    (local: string | undefined, domain: string, resource?: string): JID;
    JID: typeof JID;
    equal(a: JID, b: JID): boolean;
  }
  const jid: jid;
  export default jid;
}

declare module "@xmpp/component-core" {
  import { EventEmitter } from "node:events";
  import type { Element } from "@xmpp/xml";
  import type { JID } from "@xmpp/jid";

  export type ConnectionStatus =
    | "offline" | "connecting" | "connect" | "opening" | "open" | "online"
    | "closing" | "close" | "disconnecting" | "disconnect";

  export class Component extends EventEmitter {
    constructor(options: { service: string; domain: string });
    status: ConnectionStatus;
    /** The TCP socket while connected. */
    socket: import("node:net").Socket | null;
    jid: JID | null;
    timeout: number;
    options: { service: string; domain: string };
    start(): Promise<JID>;
    stop(): Promise<unknown>;
    connect(service: string): Promise<void>;
    open(options: { domain: string; lang?: string }): Promise<Element>;
    authenticate(id: string, password: string): Promise<void>;
    disconnect(timeout?: number): Promise<void>;
    send(element: Element): Promise<void>;
    write(data: string): Promise<void>;
  }
}

declare module "@xmpp/debug" {
  import type { EventEmitter } from "node:events";
  export default function debug(entity: EventEmitter, force?: boolean): void;
}

declare module "@xmpp/client" {
  import { EventEmitter } from "node:events";
  import type { Element } from "@xmpp/xml";
  import type { JID } from "@xmpp/jid";
  export { default as xml } from "@xmpp/xml";

  export interface Client extends EventEmitter {
    jid: JID | null;
    status: string;
    /** The TCP socket while connected. */
    socket: import("node:net").Socket | null;
    start(): Promise<JID>;
    stop(): Promise<unknown>;
    send(element: Element): Promise<void>;
    /** Writes raw text on the stream. */
    write(text: string): Promise<void>;
    /** Serialises the stanzas into one write on the socket. */
    sendMany(elements: Element[]): Promise<void>;
    iqCaller: { request(el: Element, timeout?: number): Promise<Element> };
    /** Answers incoming iq get/set; without a handler (or a falsy return) it replies service-unavailable. */
    iqCallee: {
      get(xmlns: string, name: string, handler: IqCalleeHandler): void;
      set(xmlns: string, name: string, handler: IqCalleeHandler): void;
    };
    reconnect: { stop(): void };
  }
  /** An Element is the reply's payload (an <error/> makes an error reply); true: an empty result. */
  export type IqCalleeHandler = (ctx: { stanza: Element; element: Element; from: JID | null; to: JID | null; id: string }) =>
    Element | boolean | undefined | Promise<Element | boolean | undefined>;
  export function client(options: {
    /** xmpp://HOST:PORT or xmpps://; without it the server is found from `domain` (SRV, as clients do). */
    service?: string;
    domain: string;
    resource?: string;
    username?: string;
    password?: string;
    // In 0.13.x the mechanism is chosen by the library (its first one the server offers, SCRAM-SHA-1
    // before PLAIN) and passed as the second argument; `auth` only takes the credentials.
    credentials?: (
      auth: (creds: { username: string; password: string }) => Promise<void>,
      mechanism: string,
    ) => Promise<void>;
  }): Client;
}
