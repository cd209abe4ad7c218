// DMUC2 (XEP-0282) state of one gateway, in both of its roles: primary for the rooms of its own domain,
// replica for remote rooms its local users are in. Immutable, like the rooms.
import type { Element } from "@xmpp/xml";
import type { HistoryEntry, Occupant, Role } from "../room/types.js";
import type { LinkStream } from "./link/stream.js";

export type LinkState = "negotiating" | "syncing" | "active" | "split";

/** The primary's view of one replica serving one room. */
export interface ReplicaLink {
  readonly replicaJid: string;
  /** The user domain it serves. */
  readonly domain: string;
  readonly state: LinkState;
  readonly keepaliveSeconds: number;
  readonly historyLimit: number;
  /** Sessions (full JIDs) the replica delivers to, ENTER acknowledged or sent. */
  readonly members: ReadonlySet<string>;
  /** Last time anything arrived from the replica, and last time we sent it anything (ms). */
  readonly lastHeard: number;
  readonly lastSent: number;
  /** While split: since when (ms); the users' copies are held meanwhile. */
  readonly splitSince?: number;
  /**
   * While split: the stanza-id of the last history message the replica had surely received when the
   * link split (null: none of the history); the netjoin sends every message broadcast after it, in the
   * room's order. Times cannot say which: a message taken late keeps its original, earlier time.
   * Absent (a link restored from the database): the netjoin goes by `splitSince`.
   */
  readonly splitAfter?: string | null;
  /** The reliable link (link/stream.ts): our broadcasts to the replica, its users' submissions to us. */
  readonly stream: LinkStream<Element>;
  /**
   * While split: the replica's own server said its component is not connected (the replica process is
   * down, its server is up), so the link's users are served directly (primary-replica-down.ts).
   */
  readonly replicaDown?: boolean;
  /**
   * Groupchat messages (by stanza-id) delivered directly to the link's users since the split, and to
   * which sessions: the netjoin tells the replica, so that it does not deliver them a second time.
   */
  readonly served?: ReadonlyMap<string, ServedDirectly>;
  /**
   * Ids of copies sent to the replica more than once since the last netjoin: a bounce of one of them
   * does not prove the replica never had it (an earlier copy may have reached it before it went).
   */
  readonly resent?: ReadonlySet<string>;
}

/** A message the primary delivered directly to some of a split replica's users. */
export interface ServedDirectly {
  /** The `id` of the direct copies (the sender's), by which their bounces name them. */
  readonly copyId?: string;
  readonly sessions: ReadonlySet<string>;
}

/** What the adapter layer knows of a remote user domain. */
export interface DomainInfo {
  readonly status: "probing" | "dmuc" | "plain";
  readonly replicaJid?: string;
  /** Until when this answer holds (ms). */
  readonly expires: number;
  /** Items still to ask disco#info while probing. */
  readonly candidates?: readonly string[];
}

/** The replica's copy of a remote room. */
export interface ReplicatedRoom {
  readonly roomJid: string;
  /** The bare room JID that registered us: the only source of control stanzas. */
  readonly primaryJid: string;
  readonly keepaliveSeconds: number;
  readonly historyLimit: number;
  readonly whois: "moderators" | "anyone";
  readonly presenceBroadcast: readonly Role[];
  /** Nick -> the room's broadcast presence of that occupant. */
  readonly roster: ReadonlyMap<string, Element>;
  /** Local sessions (full JID) -> nick. */
  readonly local: ReadonlyMap<string, string>;
  readonly history: readonly HistoryEntry[];
  readonly subject: { readonly text: string; readonly nick: string | null; readonly at: Date } | null;
  readonly lastHeard: number;
  readonly lastSent: number;
  /** The reliable link to the primary (link/stream.ts): our users' submissions, the room's broadcasts. */
  readonly link: LinkStream<Submission>;
  /** Whether local users may go on talking among themselves during a netsplit (the room's splitchat). */
  readonly splitChat: boolean;
  /**
   * Since when the room is served locally (ms): from the link's split until the primary's netjoin; null
   * otherwise. The link may be up again before the netjoin ends this.
   */
  readonly splitSince: number | null;
  /** Groupchat messages local users sent during the split, in order, for the netjoin answer. */
  readonly splitQueue: readonly SplitMessage[];
  /** Local sessions -> the last presence each sent during the split (relayed to the primary after netjoin). */
  readonly splitPresences: ReadonlyMap<string, Element>;
  /** Nicks that left here during the split: not taken back from the netjoin roster. */
  readonly splitGone: ReadonlySet<string>;
  /**
   * Local sessions that left (or were kicked) here during a split and were told so then: the primary's
   * LEAVE for them, after the netjoin, is not delivered to them a second time. A session leaves this
   * set with that LEAVE, or when it enters again.
   */
  readonly splitLeft?: ReadonlySet<string>;
  /** Non-local nicks shown away to local users since the split (their real presence follows the netjoin). */
  readonly splitAway?: ReadonlySet<string>;
  /** Local occupants kicked by local moderators during the split, in order (sent in the netjoin answer). */
  readonly splitKicks?: readonly SplitKick[];
  /** Nicks local users took by entering during the split (provisional until the primary's netjoin decision). */
  readonly splitEntered?: ReadonlySet<string>;
  /** origin-ids of messages sent back at netjoin whose broadcast has not come back yet. */
  readonly echoes: ReadonlySet<string>;
  /** Restored from the database at start: the server module must be asked to divert again. */
  readonly restored?: boolean;
  /** What the replica still reads of the room's history after a netjoin, page by page (null: nothing). */
  readonly catchUp?: CatchUp | null;
  /** Since when (ms) none of our users is in the room, as the tick saw it (replica-forget.ts). */
  readonly emptySince?: number;
}

/** A netjoin's catch-up under way (docs/PROTOCOL.md "Netjoin"): where the next page starts. */
export interface CatchUp {
  /** The split's start, as the netjoin gave it: where reading starts when we have none of the room's messages. */
  readonly since: Date;
  /** The stanza-id of the last message read, in the room's order (null: none yet). */
  readonly after: string | null;
  /** Whether what is read is delivered to local users (the netjoin's catchup attribute), or only stored. */
  readonly deliver: boolean;
  /** When the request for the next page went out (null: none out). */
  readonly asked: number | null;
  /**
   * The stanza-ids of the messages broadcast to us live on the link since the catch-up started: they
   * were delivered then, so a page bringing them again stores and delivers nothing of them. (Not the
   * end of the catch-up: the link also brings, late, messages from before the netjoin, such as a split
   * replica's own users' messages sent on the primary's new stream, past messages the catch-up still
   * has to bring.)
   */
  readonly live?: ReadonlySet<string>;
}

/** A local user's stanza submitted to the primary on the link (as the user sent it), and when (ms). */
export interface Submission {
  readonly stanza: Element;
  readonly at: number;
}

/** A message a local user sent to a split room: as sent (from the full JID, with origin-id), and when. */
export interface SplitMessage {
  readonly session: string;
  readonly at: Date;
  readonly stanza: Element;
}

/** A kick of a local occupant by a local moderator during a split: the sessions' full JIDs. */
export interface SplitKick {
  readonly jid: string;
  readonly nick: string;
  readonly actor: string;
  readonly reason?: string;
}

/** What a room was at some moment: its newest history entry and its occupants (shared, immutable). */
export interface RoomSnapshot {
  readonly after: string | undefined;
  readonly occupants: ReadonlyMap<string, Occupant>;
}

/** An IQ we sent and whose answer continues some work. */
export type PendingQuery =
  | { readonly kind: "disco-items"; readonly domain: string; readonly sent: number }
  | { readonly kind: "disco-info"; readonly domain: string; readonly item: string; readonly sent: number }
  | { readonly kind: "replicate"; readonly roomJid: string; readonly replicaJid: string; readonly sent: number }
  /**
   * An IQ to a replica (state, enter, leave, ping); `fallback` is what the session gets directly if it
   * fails. An ENTER carries `snapshot`, the room when it went, so that a refused one hands the session
   * directly what went to the replica meanwhile.
   */
  | {
      readonly kind: "link-iq";
      readonly roomJid: string;
      readonly replicaJid: string;
      readonly session?: string;
      readonly fallback?: readonly Element[];
      readonly sent: number;
      readonly snapshot?: RoomSnapshot;
    }
  /** The netjoin sent to a replica that answers again. */
  | { readonly kind: "netjoin"; readonly roomJid: string; readonly replicaJid: string; readonly sent: number }
  /** `after`: the newest history entry when the ENTER came, so a silent ENTER can hand over what came while it waited. */
  | {
      readonly kind: "directed";
      readonly roomJid: string;
      readonly session: string;
      readonly enterIq: Element;
      readonly sent: number;
      readonly after?: string;
      /** The roster when the ENTER came: a silent ENTER hands over the presences that changed meanwhile. */
      readonly roster?: ReadonlyMap<string, Element>;
    }
  | { readonly kind: "replica-iq"; readonly roomJid: string; readonly sent: number }
  /** A replica's request for the next page of a netjoin's catch-up. */
  | { readonly kind: "catchup"; readonly roomJid: string; readonly sent: number }
  /** A <replicate/> waiting for the server module to say whether any local user is in the room. */
  | { readonly kind: "replicate-check"; readonly roomJid: string; readonly request: Element; readonly sent: number }
  /** The replica tells the primary it leaves a room none of its users is in (replica-forget.ts). */
  | { readonly kind: "unreplicate"; readonly roomJid: string; readonly sent: number };

/** Primary: a session's stanzas to a room, held while its domain's link to the room is set up. */
export interface HeldSession {
  /** When its entry came (ms). */
  readonly since: number;
  /** The entry presence, then whatever else it sent the room meanwhile, in order. */
  readonly stanzas: readonly Element[];
}

/** Primary: entries of one domain into one room waiting for the link (primary-entry.ts). */
export interface EntryWait {
  /** Until when entries are held (ms); after it they are admitted directly until the set-up ends. */
  readonly until: number;
  /** Held sessions (full JIDs), in the order their entries came. */
  readonly held: ReadonlyMap<string, HeldSession>;
}

/**
 * Primary: a session of the room whose ENTER the replica has not taken yet: in flight (`retryAt` null;
 * also when its answer was lost in a split), or refused and served directly until a silent ENTER is
 * taken (sent again at `retryAt`, ms).
 */
export interface UnconfirmedEnter {
  readonly replicaJid: string;
  readonly retryAt: number | null;
  /** How many ENTERs of this session the replica refused so far. */
  readonly refusals: number;
}

export interface DmucState {
  /** Primary: room JID -> replica JID -> link. */
  readonly links: ReadonlyMap<string, ReadonlyMap<string, ReplicaLink>>;
  /** Primary: remote user domain -> what we know of it. */
  readonly domains: ReadonlyMap<string, DomainInfo>;
  /** Replica: remote room JID -> our copy. */
  readonly replicated: ReadonlyMap<string, ReplicatedRoom>;
  /** IQ id -> what its answer continues. */
  readonly pending: ReadonlyMap<string, PendingQuery>;
  /** Primary: room JID -> user domain -> entries waiting for that domain's link. */
  readonly entryWaits: ReadonlyMap<string, ReadonlyMap<string, EntryWait>>;
  /** Primary: room JID -> session -> its ENTER not taken yet by the replica. */
  readonly unconfirmedEnters: ReadonlyMap<string, ReadonlyMap<string, UnconfirmedEnter>>;
}

export const emptyDmucState = (): DmucState => ({ links: new Map(), domains: new Map(), replicated: new Map(), pending: new Map(), entryWaits: new Map(), unconfirmedEnters: new Map() });
