// The state of one room, as the pure engine sees it. Values are treated as immutable: a change
// builds new objects (sharing what did not change), so a failed stanza leaves the old state intact.
import type { Element } from "@xmpp/xml";

export type Role = "moderator" | "participant" | "visitor" | "none";
export type Affiliation = "owner" | "admin" | "member" | "outcast" | "none";
export type Whois = "moderators" | "anyone";
export type AllowPm = "anyone" | "participants" | "moderators" | "none";

/** The muc#roomconfig settings (XEP-0045 §10.2); each is owned by the plugin that implements it. */
export interface RoomConfig {
  readonly name: string;
  readonly description: string;
  readonly language: string;
  readonly persistent: boolean;
  readonly public: boolean;
  readonly membersOnly: boolean;
  readonly moderated: boolean;
  readonly password: string;
  readonly whois: Whois;
  /** null: no limit beyond the service's. */
  readonly maxUsers: number | null;
  readonly changeSubject: boolean;
  readonly allowInvites: boolean;
  readonly allowPm: AllowPm;
  /** How many messages the room keeps to send as history on entering. */
  readonly historyLength: number;
  /** Whether messages go into the room's XEP-0313 archive (muc#roomconfig_enablearchiving). */
  readonly archiving: boolean;
  /** Roles whose presence is broadcast to the room. */
  readonly presenceBroadcast: readonly Role[];
  /** DMUC2: whether a split replica's users may go on talking among themselves (docs/PROTOCOL.md). */
  readonly splitChat: boolean;
  /** Days the room's history and audit rows are kept; null: the service's retention (plugins/audit.ts). */
  readonly retentionDays: number | null;
}

export interface AffiliationEntry {
  readonly affiliation: Exclude<Affiliation, "none">;
  readonly reason?: string;
  /** The reserved nick (XEP-0045 §7.10), for members and above. */
  readonly nick?: string;
}

/** One client session of an occupant: its full JID and the last presence it sent to the room. */
export interface Session {
  readonly jid: string;
  readonly presence: Element;
}

/** An occupant is a nick; several resources of one bare JID may share it (Prosody's multi-session). */
export interface Occupant {
  readonly nick: string;
  readonly bareJid: string;
  readonly role: Role;
  /** XEP-0421 occupant-id: stable per room and bare JID. */
  readonly occupantId: string;
  /** Full JID -> session, in join order. */
  readonly sessions: ReadonlyMap<string, Session>;
}

export interface Subject {
  readonly text: string;
  readonly nick: string | null;
  readonly at: Date;
}

export interface HistoryEntry {
  readonly stanzaId: string;
  readonly nick: string;
  readonly occupantId: string;
  readonly senderJid: string;
  readonly at: Date;
  /** The message as broadcast, without `to` (stamped per recipient). */
  readonly stanza: Element;
  /** Characters of the serialised stanza, for the maxchars history limit. */
  readonly chars: number;
}

export interface TokenBucket {
  readonly tokens: number;
  readonly at: number;
}

export interface Room {
  /** The room's bare JID. */
  readonly jid: string;
  readonly config: RoomConfig;
  /** A new reserved room refuses others until its owner configures it (XEP-0045 §10.1.3). */
  readonly locked: boolean;
  readonly affiliations: ReadonlyMap<string, AffiliationEntry>;
  /** Nick -> occupant. */
  readonly occupants: ReadonlyMap<string, Occupant>;
  /** Full JID of a session -> nick of its occupant. */
  readonly sessionNicks: ReadonlyMap<string, string>;
  /** Per-session token buckets of the flood limit (plugins/limits.ts). */
  readonly throttle: ReadonlyMap<string, TokenBucket>;
  readonly subject: Subject | null;
  readonly history: readonly HistoryEntry[];
  /**
   * Set on a persistent room that nobody is in: its history was let go from memory and lives in
   * history_messages only; the shell reads it back before the next entry (issue 16 point 8).
   */
  readonly historyOnDisk?: boolean;
  /** The key of the room's XEP-0421 occupant-ids (occupant-id.ts); random, stored with the room. */
  readonly occupantIdSecret: string;
}

export const DEFAULT_ROOM_CONFIG: RoomConfig = {
  name: "",
  description: "",
  language: "",
  persistent: false,
  // Hidden until its owner lists it, as Prosody's muc_room_default_public = false.
  public: false,
  membersOnly: false,
  moderated: false,
  password: "",
  whois: "moderators",
  maxUsers: null,
  changeSubject: false,
  allowInvites: false,
  allowPm: "anyone",
  historyLength: 20,
  archiving: true,
  presenceBroadcast: ["moderator", "participant", "visitor"],
  splitChat: true,
  retentionDays: null,
};

export function newRoom(jid: string, config: RoomConfig = DEFAULT_ROOM_CONFIG, occupantIdSecret = ""): Room {
  return {
    occupantIdSecret,
    jid,
    config,
    locked: false,
    affiliations: new Map(),
    occupants: new Map(),
    sessionNicks: new Map(),
    throttle: new Map(),
    subject: null,
    history: [],
  };
}
