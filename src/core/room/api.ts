// The typed hooks and request shapes through which plugins extend a room (Prosody's muc events).
import type { Element } from "@xmpp/xml";
import type { Effect } from "../effects.js";
import type { EngineContext, ServiceSettings, DiscoInfo } from "../service.js";
import type { StanzaError } from "../stanza-error.js";
import type { FormField } from "../../xmpp/forms.js";
import type { Jid } from "../../xmpp/jid.js";
import type { Affiliation, Occupant, Role, Room, RoomConfig } from "./types.js";

/** A stanza addressed to a room or one of its occupants. */
export interface RoomRequest {
  readonly settings: ServiceSettings;
  readonly context: EngineContext;
  readonly stanza: Element;
  readonly from: Jid;
  /** `from` as a string, and its bare JID. */
  readonly fromFull: string;
  readonly fromBare: string;
  readonly roomJid: string;
  /** The resource of `to`: an occupant's nick, or null for the room itself. */
  readonly nick: string | null;
  readonly effects: Effect[];
}

/** Events whose `room` field handlers may replace with an updated room. */
export interface RoomChange {
  room: Room;
}

export type RoomEvents = {
  /** Every message and presence to an existing room, before it is handled (rate limits); a StanzaError vetoes. */
  "room/stanza": { event: RoomChange & { request: RoomRequest; occupant: Occupant | undefined }; result: StanzaError };
  /** A room is about to be created by its first occupant; a StanzaError vetoes. */
  "room/pre-create": { event: { request: RoomRequest }; result: StanzaError };
  "room/created": { event: RoomChange & { request: RoomRequest }; result: never };
  /** Checks before a user enters (password, members-only, bans, limits); a StanzaError vetoes. */
  "occupant/pre-join": {
    event: { request: RoomRequest; room: Room; nick: string; affiliation: Affiliation; role: Role; join: Element };
    result: StanzaError;
  };
  /** After the self-presence: history, subject. */
  "occupant/joined": { event: RoomChange & { request: RoomRequest; occupant: Occupant; join: Element }; result: never };
  "occupant/left": { event: RoomChange & { request: RoomRequest; occupant: Occupant }; result: never };
  /** A groupchat message from an occupant before it is broadcast; a StanzaError vetoes. */
  "message/groupchat": { event: RoomChange & { request: RoomRequest; occupant: Occupant; message: Element }; result: StanzaError };
  "room/disco-info": { event: { request: RoomRequest; room: Room; info: DiscoInfo }; result: never };
  /** disco#info on a node of the room (e.g. x-roomuser-item): the handler that knows the node fills `info` and returns true. */
  "room/disco-node": { event: { request: RoomRequest; room: Room; node: string; info: DiscoInfo }; result: true };
  "room/config-form": { event: { request: RoomRequest; room: Room; fields: FormField[] }; result: never };
  /** A submitted configuration form; handlers write their fields into `config`. */
  "room/config-submitted": {
    event: { request: RoomRequest; room: Room; values: ReadonlyMap<string, string[]>; config: { -readonly [K in keyof RoomConfig]: RoomConfig[K] } };
    result: StanzaError;
  };
  /** After a configuration change was stored: status 104 notices, members-only kicks. */
  "room/config-changed": { event: RoomChange & { request: RoomRequest; previous: RoomConfig }; result: never };
};
