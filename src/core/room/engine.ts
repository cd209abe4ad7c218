// The room engine: routes a stanza addressed to a room (or an occupant) to the flow that handles it.
import { Hooks } from "../hooks.js";
import { IqRouter, REPLY_LATER, type IqType } from "../iq-router.js";
import { StanzaError } from "../stanza-error.js";
import { send } from "../effects.js";
import { iqPayload, iqResult } from "../../xmpp/stanza.js";
import type { RoomEvents, RoomRequest } from "./api.js";
import { handleGroupchat, handlePrivateMessage } from "./messages.js";
import { occupantOfSession } from "./mutate.js";
import { handlePresence, removeForError } from "./occupancy.js";
import { meansGone } from "../liveness.js";
import { affiliationOf } from "./privileges.js";
import type { Affiliation, Occupant, Room } from "./types.js";

/** What an IQ handler for a room sees; it may replace `room` (undefined when it destroys the room). */
export interface RoomIq {
  readonly request: RoomRequest;
  room: Room | undefined;
  /** The existing room the IQ is addressed to. */
  readonly target: Room;
  readonly affiliation: Affiliation;
  /** The sender's occupant, when the sender is in the room. */
  readonly occupant: Occupant | undefined;
}

/** Handlers of messages to the bare room that are not groupchat (invites, voice requests...). */
export type RoomMessageHandler = (request: RoomRequest, room: Room) => Room | undefined | void;

export class RoomEngine {
  readonly hooks = new Hooks<RoomEvents>();
  readonly iq = new IqRouter<RoomIq>();
  /** IQs addressed to an occupant (room@service/nick), e.g. XEP-0410 self-ping. */
  readonly occupantIq = new IqRouter<RoomIq>();
  private readonly messageHandlers: RoomMessageHandler[] = [];
  /** IQs to an occupant with no route of their own (vCard, version, disco...) and the answers to them. */
  private occupantIqRelay: ((request: RoomRequest, room: Room) => void) | null = null;

  relayOccupantIqs(relay: (request: RoomRequest, room: Room) => void): void {
    this.occupantIqRelay = relay;
  }

  onRoomMessage(handler: RoomMessageHandler): void {
    this.messageHandlers.push(handler);
  }

  handle(request: RoomRequest, room: Room | undefined): Room | undefined {
    if (room && request.stanza.name !== "iq" && request.stanza.attrs.type !== "error") {
      const event = { request, room, occupant: occupantOfSession(room, request.fromFull) };
      const veto = this.hooks.fire("room/stanza", event);
      if (veto) throw veto;
      room = event.room;
    }
    switch (request.stanza.name) {
      case "presence":
        return handlePresence(this.hooks, request, room);
      case "message":
        return this.handleMessage(request, room);
      case "iq":
        return this.handleIq(request, room);
      default:
        return room;
    }
  }

  private handleMessage(request: RoomRequest, room: Room | undefined): Room | undefined {
    const type = request.stanza.attrs.type ?? "normal";
    if (type === "error") {
      // A message bounced by an occupant's session (to the room or to another occupant): with a
      // condition that means the session is gone, it is removed (Prosody's is_kickable_error).
      const occupant = room ? occupantOfSession(room, request.fromFull) : undefined;
      return room && occupant && meansGone(request.stanza) ? removeForError(this.hooks, request, room, occupant, request.stanza) : room;
    }
    if (!room) throw new StanzaError("cancel", "item-not-found", "No such room");
    if (type === "groupchat") return handleGroupchat(this.hooks, request, room);
    if (request.nick !== null) return handlePrivateMessage(request, room);
    for (const handler of this.messageHandlers) {
      const result = handler(request, room);
      if (result !== undefined) return result ?? undefined;
    }
    throw new StanzaError("modify", "bad-request", "Messages to the room must be of type groupchat", { by: room.jid });
  }

  private handleIq(request: RoomRequest, room: Room | undefined): Room | undefined {
    const { stanza } = request;
    const type = stanza.attrs.type;
    if (type === "result" || type === "error") {
      if (room && request.nick !== null) this.occupantIqRelay?.(request, room);
      return room;
    }
    if (type !== "get" && type !== "set") throw new StanzaError("modify", "bad-request", "IQ type must be get or set");
    const payload = iqPayload(stanza);
    if (!payload) throw new StanzaError("modify", "bad-request", "An IQ request carries exactly one payload");
    if (!room) throw new StanzaError("cancel", "item-not-found", "No such room");
    const router = request.nick === null ? this.iq : this.occupantIq;
    const handler = router.find(type as IqType, payload);
    if (!handler && request.nick !== null && this.occupantIqRelay) {
      this.occupantIqRelay(request, room);
      return room;
    }
    if (!handler) throw new StanzaError("cancel", "service-unavailable", undefined, { by: room.jid });
    const context: RoomIq = {
      request,
      room,
      target: room,
      affiliation: affiliationOf(room, request.fromBare, request.settings.admins),
      occupant: occupantOfSession(room, request.fromFull),
    };
    const result = handler(context, payload);
    if (result !== REPLY_LATER) request.effects.unshift(send(iqResult(stanza, result)));
    return context.room;
  }
}

