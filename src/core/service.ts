// The pure MUC service: a stanza and the service state in, the new state and effects out.
// No IO, no clock, no randomness: time and fresh ids come in through EngineContext.
import type { Element } from "@xmpp/xml";
import { Hooks } from "./hooks.js";
import { IqRouter, type IqType } from "./iq-router.js";
import { StanzaError } from "./stanza-error.js";
import { logEffect, send, type Effect } from "./effects.js";
import { errorReply, iqPayload, iqResult, mayAnswerWithError } from "../xmpp/stanza.js";
import { bareString, jidToString, parseJid, type Jid } from "../xmpp/jid.js";
import type { DiscoIdentity, DiscoItem } from "../xmpp/disco.js";
import { RoomEngine } from "./room/engine.js";
import type { RoomRequest } from "./room/api.js";
import type { Room, RoomConfig } from "./room/types.js";
import { RoomTable } from "./room-table.js";
import { emptyDmucState, type DmucState } from "./dmuc/state.js";
import type { LivenessState } from "./liveness.js";
import type { Tombstone } from "./tombstones.js";

export interface EngineContext {
  /** The time the shell received the stanza. */
  readonly now: Date;
  /** A fresh unique id (stanza-id, occupant-id...); deterministic in tests. */
  readonly newId: () => string;
  /**
   * Set when a stanza is taken late with its original time as `now` (DMUC2 netjoin): broadcasts then
   * carry a <delay/> with that time, so that clients place them where they belong.
   */
  readonly catchUp?: boolean;
}

export interface ServiceSettings {
  readonly domain: string;
  /** Bare JIDs of service administrators (DMUC_ADMINS). */
  readonly admins: ReadonlySet<string>;
  readonly name: string;
  /** The domain whose users this gateway serves as a DMUC2 replica (DMUC_LOCAL_DOMAIN); served directly as primary. */
  readonly localDomain?: string;
  /** The configuration a new room starts with (DMUC_ROOM_DEFAULTS); DEFAULT_ROOM_CONFIG when absent. */
  readonly roomDefaults?: RoomConfig;
  /** Who may create rooms (DMUC_ROOM_CREATION): service admins, users of localDomain's parent, or anyone. */
  readonly roomCreation?: RoomCreation;
  /** Days a destroyed persistent room answers entries with <gone/> (DMUC_TOMBSTONE_DAYS); none when absent or 0. */
  readonly tombstoneDays?: number;
}

export type RoomCreation = "admin" | "local" | "everyone";

export interface ServiceState {
  /** Bare room JID -> room. */
  readonly rooms: RoomTable;
  /** DMUC2 links, replicated rooms and outstanding queries (src/core/dmuc/). */
  readonly dmuc: DmucState;
  /** Pings verifying that occupants' sessions still exist (src/core/liveness.ts); empty when absent. */
  readonly liveness?: LivenessState;
  /** Destroyed persistent rooms still answering entries with <gone/> (src/core/tombstones.ts), by room JID. */
  readonly tombstones?: ReadonlyMap<string, Tombstone>;
}

export const emptyServiceState = (): ServiceState => ({ rooms: RoomTable.empty(), dmuc: emptyDmucState() });

/** What a handler of a stanza addressed to the service domain itself sees. */
export interface ServiceRequest {
  readonly settings: ServiceSettings;
  /** Handlers of service IQs may replace the state (e.g. an administrator destroying rooms). */
  state: ServiceState;
  readonly stanza: Element;
  readonly from: Jid;
  readonly context: EngineContext;
  readonly effects: Effect[];
}

export interface DiscoInfo {
  identities: DiscoIdentity[];
  features: Set<string>;
  /** XEP-0128 extension forms. */
  forms: Element[];
}

/** A room stanza was handled: DMUC2 rewrites who gets which copy (request.effects, request.state). */
export interface RoomHandled {
  readonly request: ServiceRequest;
  readonly roomJid: string;
  readonly before: Room | undefined;
  readonly after: Room | undefined;
}

/** A timer tick from the shell: keepalives, expiries and timeouts. */
export interface Tick {
  state: ServiceState;
  readonly settings: ServiceSettings;
  readonly context: EngineContext;
  readonly effects: Effect[];
}

export type ServiceEvents = {
  /**
   * Every stanza first: a handler that takes it (DMUC2 traffic, answers to our own queries, stanzas
   * diverted to a replica) updates request.state and returns true; otherwise routing goes on as usual.
   */
  "service/route": { event: { request: ServiceRequest; to: Jid }; result: true };
  "service/room-handled": { event: RoomHandled; result: never };
  "service/tick": { event: Tick; result: never };
  /** The component is connected (again): what was in flight may be lost, occupants may have gone meanwhile. */
  "service/online": { event: Tick; result: never };
  "service/disco-info": { event: { request: ServiceRequest; info: DiscoInfo }; result: never };
  /** disco#info on a node of the service: the handler that knows the node fills `info` and returns true. */
  "service/disco-node": { event: { request: ServiceRequest; node: string; info: DiscoInfo }; result: true };
  /** disco#items on the service (node undefined) or one of its nodes: the handler that knows it answers with the items. */
  "service/disco-items": { event: { request: ServiceRequest; node: string | undefined }; result: DiscoItem[] };
};

export interface PluginApi {
  readonly settings: ServiceSettings;
  readonly hooks: Hooks<ServiceEvents>;
  readonly serviceIq: IqRouter<ServiceRequest>;
  readonly rooms: RoomEngine;
  /** Handles a stanza the plugin makes up (a user's message taken at netjoin) as if it had arrived. */
  inject(state: ServiceState, stanza: Element, context: EngineContext): Outcome;
}

export interface Plugin {
  readonly name: string;
  register(api: PluginApi): void;
}

export interface Outcome {
  state: ServiceState;
  effects: Effect[];
}

export class MucService {
  private readonly api: PluginApi;

  constructor(
    readonly settings: ServiceSettings,
    plugins: readonly Plugin[],
  ) {
    this.api = {
      settings,
      hooks: new Hooks(),
      serviceIq: new IqRouter(),
      rooms: new RoomEngine(),
      inject: (state, stanza, context) => this.handle(state, stanza, context),
    };
    for (const plugin of plugins) plugin.register(this.api);
  }

  handle(state: ServiceState, stanza: Element, context: EngineContext): Outcome {
    const from = parseJid(stanza.attrs.from);
    // The server stamps `from` on everything it routes to us; without one there is nobody to answer.
    if (!from) return { state, effects: [logEffect("warn", "stanza.no_from", { name: stanza.name })] };
    const effects: Effect[] = [];
    try {
      const to = parseJid(stanza.attrs.to);
      if (!to) throw new StanzaError("modify", "jid-malformed", "The recipient address is not a valid JID");
      const request: ServiceRequest = { settings: this.settings, state, stanza, from, context, effects };
      if (this.api.hooks.fire("service/route", { request, to })) return { state: request.state, effects };
      if (to.domain !== this.settings.domain) throw new StanzaError("cancel", "item-not-found", "Not a room of this service");
      if (to.local === null && to.resource === null) return { state: this.handleServiceStanza(request), effects };
      return { state: this.handleRoomStanza(request, to), effects };
    } catch (err) {
      return { state, effects: this.failure(stanza, err) };
    }
  }

  private handleRoomStanza(request: ServiceRequest, to: Jid): ServiceState {
    const roomJid = `${to.local}@${to.domain}`;
    const roomRequest: RoomRequest = {
      settings: this.settings,
      context: request.context,
      stanza: request.stanza,
      from: request.from,
      fromFull: jidToString(request.from),
      fromBare: bareString(request.from),
      roomJid,
      nick: to.resource,
      effects: request.effects,
    };
    const before = request.state.rooms.get(roomJid);
    const after = this.api.rooms.handle(roomRequest, before);
    if (after !== before) {
      const rooms = after ? request.state.rooms.with(roomJid, after) : request.state.rooms.without(roomJid);
      request.state = { ...request.state, rooms };
    }
    this.api.hooks.fire("service/room-handled", { request, roomJid, before, after });
    return request.state;
  }

  /** Runs the timers of the plugins (keepalives, expiries); the shell calls it about once a second. */
  tick(state: ServiceState, context: EngineContext): Outcome {
    const tick: Tick = { state, settings: this.settings, context, effects: [] };
    try {
      this.api.hooks.fire("service/tick", tick);
      return { state: tick.state, effects: tick.effects };
    } catch (err) {
      return { state, effects: [logEffect("warn", "service.tick_failed", { error: String((err as Error)?.stack ?? err) })] };
    }
  }

  /** The shell's component connection is up (at start, and after every reconnection). */
  online(state: ServiceState, context: EngineContext): Outcome {
    const event: Tick = { state, settings: this.settings, context, effects: [] };
    try {
      this.api.hooks.fire("service/online", event);
      return { state: event.state, effects: event.effects };
    } catch (err) {
      return { state, effects: [logEffect("warn", "service.online_failed", { error: String((err as Error)?.stack ?? err) })] };
    }
  }

  private handleServiceStanza(request: ServiceRequest): ServiceState {
    const { stanza } = request;
    if (stanza.name === "iq") {
      this.handleIq(request, this.api.serviceIq);
      return request.state;
    }
    // Messages and presences to the bare service domain carry no MUC meaning.
    if (stanza.name === "message" && mayAnswerWithError(stanza)) throw new StanzaError("cancel", "service-unavailable");
    return request.state;
  }

  private handleIq<C extends { stanza: Element; effects: Effect[] }>(request: C, router: IqRouter<C>): void {
    const { stanza } = request;
    const type = stanza.attrs.type;
    if (type === "result" || type === "error") return;
    if (type !== "get" && type !== "set") throw new StanzaError("modify", "bad-request", "IQ type must be get or set");
    const payload = iqPayload(stanza);
    if (!payload) throw new StanzaError("modify", "bad-request", "An IQ request carries exactly one payload");
    const handler = router.find(type as IqType, payload);
    if (!handler) throw new StanzaError("cancel", "service-unavailable");
    request.effects.push(send(iqResult(stanza, handler(request, payload))));
  }

  /** The error answer for a failed stanza; earlier effects are dropped, so a failure changes nothing. */
  private failure(stanza: Element, err: unknown): Effect[] {
    const known = err instanceof StanzaError;
    const effects: Effect[] = [];
    if (!known) {
      effects.push(logEffect("warn", "stanza.handler_failed", { error: String((err as Error)?.stack ?? err), name: stanza.name }));
    }
    if (mayAnswerWithError(stanza)) {
      const spec = known ? err.spec : { type: "cancel" as const, condition: "internal-server-error" as const };
      effects.push(send(errorReply(stanza, spec)));
    }
    return effects;
  }
}
