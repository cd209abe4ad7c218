// The pure MUC service: a stanza and the service state in, the new state and effects out.
// No IO, no clock, no randomness: time and fresh ids come in through EngineContext.
import xml, { type Element } from "@xmpp/xml";
import { Hooks } from "./hooks.js";
import { IqRouter, REPLY_LATER, type IqType } from "./iq-router.js";
import { StanzaError } from "./stanza-error.js";
import { audit, logEffect, send, type Effect } from "./effects.js";
import { errorReply, iqPayload, iqResult, mayAnswerWithError } from "../xmpp/stanza.js";
import { bareString, jidToString, parseJid, type Jid } from "../xmpp/jid.js";
import type { DiscoIdentity, DiscoItem } from "../xmpp/disco.js";
import { RoomEngine } from "./room/engine.js";
import type { RoomRequest } from "./room/api.js";
import type { Room, RoomConfig } from "./room/types.js";
import { RoomTable } from "./room-table.js";
import { emptyDmucState, type DmucState } from "./dmuc/state.js";
import { checkRoomQuota, type RoomQuota } from "./room-quota.js";
import { admitPresence, DEFAULT_FLOOD_LIMITS, emptyFloodState, isMuted, SENDING_TOO_FAST, TOO_MANY_ENTRIES, noteRefusal, answerRefusedMessage, pruneFloods, releaseCoalesced, type FloodLimits, type FloodState } from "./flood/limits.js";
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
  /** With `catchUp`: when the stanza is really handled (DMUC2 link timers run on this time, not `now`). */
  readonly handledAt?: Date;
  /** The DMUC2 replica that submitted the stanza on its link (so the link is up, whatever the stanza says). */
  readonly submittedBy?: string;
  /** Set for a coalesced presence update released by the tick: its flood tokens are taken already. */
  readonly floodReleased?: boolean;
}

export interface ServiceSettings {
  readonly domain: string;
  /** Bare JIDs of service administrators (DMUC_ADMINS). */
  readonly admins: ReadonlySet<string>;
  readonly name: string;
  /** The domain whose users this gateway serves as a DMUC2 replica (DMUC_LOCAL_DOMAIN); served directly as primary. */
  readonly localDomain?: string;
  /** The most characters of serialised history a room keeps in memory (DMUC_MAX_HISTORY_KB); no bound when absent. */
  readonly maxHistoryChars?: number;
  /** Room creation limits (DMUC_MAX_ROOMS, DMUC_MAX_ROOMS_PER_USER); none when absent. */
  readonly roomQuota?: RoomQuota;
  /** Flood limits on entries, exits, nick changes and presence updates; DEFAULT_FLOOD_LIMITS when absent. */
  readonly flood?: FloodLimits;
  /** Audit entries, exits, nick changes and messages too (DMUC_AUDIT_TRAFFIC); other events are always audited. */
  readonly auditTraffic?: boolean;
  /** How long history and audit rows are kept, and what room owners may choose (DMUC_RETENTION_*). */
  readonly retention?: RetentionLimits;
  /** The configuration a new room starts with (DMUC_ROOM_DEFAULT_*); DEFAULT_ROOM_CONFIG when absent. */
  readonly roomDefaults?: RoomConfig;
  /** Who may create rooms (DMUC_ROOM_CREATION): service admins, users of localDomain's parent, or anyone. */
  readonly roomCreation?: RoomCreation;
  /** Days a destroyed persistent room answers entries with <gone/> (DMUC_TOMBSTONE_DAYS); none when absent or 0. */
  readonly tombstoneDays?: number;
}

/** Days; 0 means forever. A room's own setting must lie within [minDays, maxDays] (maxDays 0: no upper limit). */
export interface RetentionLimits {
  readonly defaultDays: number;
  readonly minDays: number;
  readonly maxDays: number;
}

export type RoomCreation = "admin" | "local" | "everyone";

export interface ServiceState {
  /** Bare room JID -> room. */
  readonly rooms: RoomTable;
  /** DMUC2 links, replicated rooms and outstanding queries (src/core/dmuc/). */
  readonly dmuc: DmucState;
  /** Flood buckets, coalesced presence updates and recent refusals (src/core/flood/). */
  readonly floods: FloodState;
  /** Pings verifying that occupants' sessions still exist (src/core/liveness.ts); empty when absent. */
  readonly liveness?: LivenessState;
  /** Destroyed persistent rooms still answering entries with <gone/> (src/core/tombstones.ts), by room JID. */
  readonly tombstones?: ReadonlyMap<string, Tombstone>;
}

export const emptyServiceState = (): ServiceState => ({ rooms: RoomTable.empty(), dmuc: emptyDmucState(), floods: emptyFloodState() });

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
  private readonly flood: FloodLimits;

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
    this.flood = settings.flood ?? DEFAULT_FLOOD_LIMITS;
  }

  handle(state: ServiceState, stanza: Element, context: EngineContext): Outcome {
    // A flood just refused costs a map lookup, before any parsing (issue 16 point 7).
    if (!context.floodReleased && isMuted(state.floods, stanza, context.now.getTime())) {
      // Still, a message is answered, from its raw attributes, as Prosody's muc_limits answers every
      // stanza it drops: its sender's client must mark it as not sent. Presences stay silent.
      if (stanza.name !== "message") return { state, effects: [] };
      // At most MESSAGE_ANSWERS_PER_SECOND a second per sender (limits.ts).
      const floods = stanza.attrs.type === "error" ? null : answerRefusedMessage(state.floods, String(stanza.attrs.from), context.now.getTime());
      if (!floods) return { state, effects: [] };
      const room = String(stanza.attrs.to ?? "").split("/")[0]!;
      return { state: { ...state, floods }, effects: this.failure(stanza, new StanzaError("wait", "policy-violation", SENDING_TOO_FAST, { by: room })) };
    }
    const from = parseJid(stanza.attrs.from);
    // The server stamps `from` on everything it routes to us; without one there is nobody to answer.
    if (!from) return { state, effects: [logEffect("warn", "stanza.no_from", { name: stanza.name })] };
    const effects: Effect[] = [];
    let request: ServiceRequest | undefined;
    try {
      const to = parseJid(stanza.attrs.to);
      if (!to) throw new StanzaError("modify", "jid-malformed", "The recipient address is not a valid JID");
      request = { settings: this.settings, state, stanza, from, context, effects };
      if (this.api.hooks.fire("service/route", { request, to })) return { state: request.state, effects };
      if (to.domain !== this.settings.domain) throw new StanzaError("cancel", "item-not-found", "Not a room of this service");
      if (to.local === null && to.resource === null) return { state: this.handleServiceStanza(request), effects };
      return { state: this.handleRoomStanza(request, to), effects };
    } catch (err) {
      // A failed stanza changes nothing but the flood counts: refused entries use up tokens too.
      if (request && request.state.floods !== state.floods) state = { ...state, floods: request.state.floods };
      if (err instanceof StanzaError && err.spec.type === "wait" && err.spec.condition === "policy-violation") return this.refusal(state, stanza, from, err, context);
      return { state, effects: this.failure(stanza, err) };
    }
  }

  private handleRoomStanza(request: ServiceRequest, to: Jid, released = false): ServiceState {
    const roomJid = `${to.local}@${to.domain}`;
    if (!released && !request.context.catchUp) {
      // Flood limits first: before the engine does anything that costs O(occupants).
      const admitted = admitPresence(request.state.floods, this.flood, {
        roomJid,
        room: request.state.rooms.get(roomJid),
        stanza: request.stanza,
        fromFull: jidToString(request.from),
        fromBare: bareString(request.from),
        nick: to.resource,
        now: request.context.now.getTime(),
      });
      if (admitted.verdict === "refuse") throw new StanzaError("wait", "policy-violation", TOO_MANY_ENTRIES, { by: roomJid });
      request.state = { ...request.state, floods: admitted.floods };
      if (admitted.verdict === "coalesce") return request.state;
    }
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
    if (!before && request.stanza.name === "presence" && request.stanza.attrs.type === undefined && to.resource !== null) {
      checkRoomQuota(request.state.rooms, this.settings.roomQuota, roomRequest.fromBare, roomJid, this.settings.admins);
    }
    const after = this.api.rooms.handle(roomRequest, before);
    if (after !== before) {
      const rooms = after ? request.state.rooms.with(roomJid, after) : request.state.rooms.without(roomJid);
      request.state = { ...request.state, rooms };
    }
    this.api.hooks.fire("service/room-handled", { request, roomJid, before, after });
    return request.state;
  }

  /**
   * Runs an operator's work (the command line, through the running gateway) as the service itself:
   * `from` is the service's domain. A throw changes nothing and is passed on.
   */
  operate<T>(state: ServiceState, context: EngineContext, work: (request: ServiceRequest, rooms: RoomEngine) => T): Outcome & { result: T } {
    const domain = this.settings.domain;
    const stanza = xml("iq", { type: "set", from: domain, to: domain, id: "operator" });
    const request: ServiceRequest = { settings: this.settings, state, stanza, from: parseJid(domain)!, context, effects: [] };
    const result = work(request, this.api.rooms);
    return { state: request.state, effects: request.effects, result };
  }

  /** Runs the timers of the plugins (keepalives, expiries); the shell calls it about once a second. */
  tick(state: ServiceState, context: EngineContext): Outcome {
    const tick: Tick = { state, settings: this.settings, context, effects: [] };
    try {
      tick.state = this.releaseCoalesced(tick.state, context, tick.effects);
      this.api.hooks.fire("service/tick", tick);
      return { state: tick.state, effects: tick.effects };
    } catch (err) {
      return { state, effects: [logEffect("warn", "service.tick_failed", { error: String((err as Error)?.stack ?? err) })] };
    }
  }

  /** Broadcasts the coalesced presence updates that the room's and the session's budgets allow again. */
  private releaseCoalesced(state: ServiceState, context: EngineContext, effects: Effect[]): ServiceState {
    const now = context.now.getTime();
    const released = releaseCoalesced(state.floods, this.flood, now);
    state = { ...state, floods: pruneFloods(released.floods, this.flood, now) };
    for (const { stanza } of released.ready) {
      const from = parseJid(stanza.attrs.from);
      const to = parseJid(stanza.attrs.to);
      if (!from || !to) continue;
      if (to.domain !== this.settings.domain) {
        // A DMUC2 replica's user in a remote room (plugins/replica-limits.ts): relayed as it came, while
        // the session is still there under that nick.
        if (state.dmuc.replicated.get(bareString(to))?.local.get(jidToString(from)) !== to.resource) continue;
        const relayed = this.handle(state, stanza, { ...context, floodReleased: true });
        state = relayed.state;
        effects.push(...relayed.effects);
        continue;
      }
      // Only while the session is still there under that nick (it may have been kicked meanwhile).
      const room = state.rooms.get(bareString(to));
      if (room?.sessionNicks.get(jidToString(from)) !== to.resource) continue;
      const own: Effect[] = [];
      const request: ServiceRequest = { settings: this.settings, state, stanza, from, context, effects: own };
      try {
        state = this.handleRoomStanza(request, to, true);
        effects.push(...own);
      } catch (err) {
        effects.push(logEffect("warn", "flood.release_failed", { error: String((err as Error)?.stack ?? err) }));
      }
    }
    return state;
  }

  /**
   * A wait/policy-violation (a flood limit), audited once per episode. A refused message or IQ is
   * always answered: its sender must learn that it was not delivered (a client marks it failed). A
   * flood of presences is answered at most once a second per session, the rest dropped unanswered, so
   * that refusing it costs almost nothing.
   */
  private refusal(state: ServiceState, stanza: Element, from: Jid, err: StanzaError, context: EngineContext): Outcome {
    const fromFull = jidToString(from);
    const noted = noteRefusal(state.floods, fromFull, stanza, context.now.getTime());
    if (!noted.answer && stanza.name === "presence") return { state: { ...state, floods: noted.floods }, effects: [] };
    if (stanza.name === "message") {
      // At most MESSAGE_ANSWERS_PER_SECOND a second per sender (limits.ts); IQs always get their answer.
      const answered = answerRefusedMessage(noted.floods, fromFull, context.now.getTime());
      if (!answered) return { state: { ...state, floods: noted.floods }, effects: [] };
      noted.floods = answered;
    }
    const effects = this.failure(stanza, err);
    if (noted.audit) {
      const roomJid = err.spec.by ?? null;
      effects.push(audit({ kind: "flood.refused", roomJid, actorJid: fromFull, details: { stanza: stanza.name, type: stanza.attrs.type ?? null, reason: err.spec.text ?? null } }));
    }
    return { state: { ...state, floods: noted.floods }, effects };
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
    const result = handler(request, payload);
    if (result !== REPLY_LATER) request.effects.push(send(iqResult(stanza, result)));
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
    if (known && err.audit) effects.push(audit(err.audit));
    return effects;
  }
}
