// A deterministic in-process DMUC2 network for the link state machines (src/core/dmuc/link/): one
// primary and three replicas, each with two local users; a seeded network between them that loses,
// duplicates, delays (and so reorders) and bounces stanzas; splits in either or both directions;
// process restarts that keep only what a link end commits (its outbox and inbox, and the replica's record
// of messages it delivered early). Room behaviour is reduced to what the link must carry: users' messages
// submitted by their replica, ordered into the history by the primary, broadcast to every replica, and
// delivered to local users early while the link is split or suspect (local continuation).
import {
  DEFAULT_LINK_TIMERS,
  durable,
  restoredLink,
  type LinkAction,
  type LinkEvent,
  type LinkTimers,
  type PrimaryLinkEvent,
  type PrimaryLinkState,
  type ReplicaLinkState,
} from "../../src/core/dmuc/link/channel.js";
import { acceptedLink, discoverLink, stepPrimary, stepReplica } from "../../src/core/dmuc/link/roles.js";

export const REPLICAS = [1, 2, 3] as const;
export const NODES = [0, 1, 2, 3] as const;
const USERS = [0, 1] as const;
/** The shell's timer period (src/shell/gateway.ts): link timers only fire on a tick. */
const TICK_MS = 1_000;

/** What a replica submits: a local user's groupchat message. */
export interface Submission {
  readonly origin: string;
  readonly replica: number;
  readonly user: number;
}
/** What the primary broadcasts: a message of the room's history (position `id`). */
export interface Broadcast {
  readonly id: number;
  readonly origin: string;
  /** The replica whose user sent it (0: a user of the primary's own server). */
  readonly replica: number;
}

export type Direction = "down" | "up" | "both";
export type Command =
  | { readonly t: "say"; readonly node: number; readonly user: number }
  | { readonly t: "fault"; readonly replica: number; readonly dir: Direction; readonly mode: "drop" | "bounce" }
  | { readonly t: "heal"; readonly replica: number }
  | { readonly t: "restart"; readonly node: number }
  | { readonly t: "wait"; readonly ms: number };

export interface NetworkProfile {
  readonly seed: number;
  /** Per stanza, in per mille, while a link is up. */
  readonly lossPerMille: number;
  readonly duplicatePerMille: number;
  /** One-way delay is uniform in [5, maxDelayMs]: stanzas overtake each other. */
  readonly maxDelayMs: number;
}

type Wire<T> =
  | { readonly kind: "data"; readonly seq: number; readonly ack: number; readonly item: T }
  | { readonly kind: "ack"; readonly ack: number; readonly probe: boolean }
  /** The error a server sends back for a stanza it could not deliver. */
  | { readonly kind: "bounce" };
interface Packet {
  readonly at: number;
  readonly order: number;
  readonly replica: number;
  /** down: primary to replica; up: replica to primary. */
  readonly dir: "down" | "up";
  readonly wire: Wire<Submission> | Wire<Broadcast>;
}

/** mulberry32: a small seeded generator, so that a schedule and its seed replay exactly. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ReplicaNode {
  link: ReplicaLinkState<Submission>;
  /** The room's history as applied here. */
  history: Broadcast[];
  /** Origins of our users' messages delivered to our users before the primary's broadcast of them. */
  early: Set<string>;
}

export class Simulation {
  now = 0;
  private order = 0;
  private said = 0;
  private readonly rand: () => number;
  private packets: Packet[] = [];
  private readonly faults = new Map<string, "drop" | "bounce">();
  private lossy = true;
  readonly history: Broadcast[] = [];
  readonly primaryLinks = new Map<number, PrimaryLinkState<Broadcast>>();
  readonly replicas = new Map<number, ReplicaNode>();
  /** node -> user -> origins received, in order of arrival (duplicates kept: that is what is checked). */
  readonly inboxes = new Map<number, string[][]>();
  /** Every message users sent. */
  readonly sent: string[] = [];

  constructor(
    private readonly profile: NetworkProfile,
    private readonly timers: LinkTimers = DEFAULT_LINK_TIMERS,
  ) {
    this.rand = random(profile.seed);
    for (const node of NODES) this.inboxes.set(node, USERS.map(() => []));
    // Links are set up before anything fails: discovery, replicate, accept.
    for (const r of REPLICAS) {
      let link = discoverLink<Broadcast>(0);
      link = this.primaryStep(r, link, { type: "discovered" });
      this.replicas.set(r, { link: acceptedLink<Submission>(0), history: [], early: new Set() });
      this.primaryLinks.set(r, this.primaryStep(r, link, { type: "accepted" }));
    }
  }

  run(commands: readonly Command[]): void {
    for (const command of commands) {
      this.apply(command);
      this.advance(command.t === "wait" ? command.ms : 50);
    }
  }

  /** Heals every fault, stops random loss, and runs until nothing is in flight or held anywhere. */
  settle(limitMs = 60 * 60_000): boolean {
    for (const r of REPLICAS) this.faults.delete(`${r}:down`), this.faults.delete(`${r}:up`);
    this.lossy = false;
    const end = this.now + limitMs;
    while (this.now < end) {
      this.advance(TICK_MS);
      if (this.quiet()) return true;
    }
    return false;
  }

  private quiet(): boolean {
    if (this.packets.length > 0) return false;
    for (const link of this.primaryLinks.values()) if (link.kind !== "active" || link.channel.outbox.unacked.length > 0 || link.channel.ackOwed !== null) return false;
    for (const node of this.replicas.values()) if (node.link.kind !== "active" || node.link.channel.outbox.unacked.length > 0 || node.link.channel.ackOwed !== null) return false;
    return true;
  }

  apply(command: Command): void {
    switch (command.t) {
      case "say":
        return this.say(command.node, command.user);
      case "fault":
        if (command.dir !== "up") this.faults.set(`${command.replica}:down`, command.mode);
        if (command.dir !== "down") this.faults.set(`${command.replica}:up`, command.mode);
        return;
      case "heal":
        this.faults.delete(`${command.replica}:down`);
        this.faults.delete(`${command.replica}:up`);
        return;
      case "restart":
        return this.restart(command.node);
      case "wait":
        return;
    }
  }

  private say(node: number, user: number): void {
    const origin = `m${++this.said}@${node}.${user}`;
    this.sent.push(origin);
    if (node === 0) return this.accept({ origin, replica: 0, user });
    const replica = this.replicas.get(node)!;
    replica.link = this.replicaStep(node, replica.link, { type: "send", item: { origin, replica: node, user } });
    this.continueLocally(node);
  }

  /** The primary takes a message into the history and broadcasts it on every link. */
  private accept(message: { origin: string; replica: number; user: number }): void {
    const entry: Broadcast = { id: this.history.length + 1, origin: message.origin, replica: message.replica };
    this.history.push(entry);
    for (const user of USERS) this.inboxes.get(0)![user]!.push(entry.origin);
    for (const r of REPLICAS) this.primaryLinks.set(r, this.primaryStep(r, this.primaryLinks.get(r)!, { type: "send", item: entry }));
  }

  /**
   * Local continuation: while its link is split or suspect, a replica delivers what its users sent and
   * the primary has not acknowledged to its local users at once, and not again when the broadcast comes.
   */
  private continueLocally(r: number): void {
    const node = this.replicas.get(r)!;
    if (node.link.kind !== "split" && node.link.kind !== "suspect") return;
    for (const { item } of node.link.channel.outbox.unacked) {
      if (node.early.has(item.origin)) continue;
      node.early.add(item.origin);
      for (const user of USERS) this.inboxes.get(r)![user]!.push(item.origin);
    }
  }

  private restart(node: number): void {
    // The process goes away with its connections: what was on its way to it is lost.
    this.packets = this.packets.filter((p) => (node === 0 ? p.dir !== "up" : !(p.replica === node && p.dir === "down")));
    if (node === 0) {
      for (const r of REPLICAS) this.primaryLinks.set(r, restoredLink(durable(this.primaryLinks.get(r)!.channel), this.now));
      return;
    }
    const replica = this.replicas.get(node)!;
    replica.link = restoredLink(durable(replica.link.channel), this.now);
  }

  private primaryStep(r: number, link: PrimaryLinkState<Broadcast>, event: PrimaryLinkEvent<Broadcast, Submission>): PrimaryLinkState<Broadcast> {
    const step = stepPrimary(link, event, this.now, this.timers);
    for (const action of step.actions) this.primaryAction(r, action);
    return step.link;
  }

  private replicaStep(r: number, link: ReplicaLinkState<Submission>, event: LinkEvent<Submission, Broadcast>): ReplicaLinkState<Submission> {
    const step = stepReplica(link, event, this.now, this.timers);
    for (const action of step.actions) this.replicaAction(r, action);
    return step.link;
  }

  private primaryAction(r: number, action: LinkAction<Broadcast, Submission>): void {
    if (action.type === "transmit") this.transmit(r, "down", { kind: "data", seq: action.seq, ack: action.ack, item: action.item });
    else if (action.type === "ack") this.transmit(r, "down", { kind: "ack", ack: action.ack, probe: action.probe });
    // Submissions are applied after the step that delivered them (accept() steps the links again).
    else if (action.type === "deliver") this.deferred.push(() => this.accept(action.item));
  }

  private deferred: (() => void)[] = [];

  private replicaAction(r: number, action: LinkAction<Submission, Broadcast>): void {
    const node = this.replicas.get(r)!;
    if (action.type === "transmit") this.transmit(r, "up", { kind: "data", seq: action.seq, ack: action.ack, item: action.item });
    else if (action.type === "ack") this.transmit(r, "up", { kind: "ack", ack: action.ack, probe: action.probe });
    else if (action.type === "deliver") {
      const entry = action.item;
      node.history.push(entry);
      if (node.early.delete(entry.origin)) return;
      for (const user of USERS) this.inboxes.get(r)![user]!.push(entry.origin);
    }
  }

  private transmit(replica: number, dir: "down" | "up", wire: Packet["wire"]): void {
    const fault = this.faults.get(`${replica}:${dir}`);
    if (fault === "drop") return;
    if (fault === "bounce") {
      // The sender's server answers with an error after a while; nothing reaches the other side.
      this.packets.push({ at: this.now + 20, order: ++this.order, replica, dir: dir === "down" ? "up" : "down", wire: { kind: "bounce" } });
      return;
    }
    if (this.lossy && this.rand() * 1000 < this.profile.lossPerMille) return;
    const copies = this.lossy && this.rand() * 1000 < this.profile.duplicatePerMille ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.packets.push({ at: this.now + 5 + Math.floor(this.rand() * Math.max(1, this.profile.maxDelayMs - 5)), order: ++this.order, replica, dir, wire });
    }
  }

  private advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const nextTick = Math.floor(this.now / TICK_MS) * TICK_MS + TICK_MS;
      const due = this.packets.reduce<Packet | null>((best, p) => (p.at <= end && (!best || p.at < best.at || (p.at === best.at && p.order < best.order)) ? p : best), null);
      if (due && due.at < nextTick) {
        this.packets = this.packets.filter((p) => p !== due);
        this.now = Math.max(this.now, due.at);
        this.receive(due);
        continue;
      }
      if (nextTick > end) break;
      this.now = nextTick;
      this.tick();
    }
    this.now = end;
  }

  private receive(packet: Packet): void {
    if (packet.dir === "down") {
      const node = this.replicas.get(packet.replica)!;
      const event = heard(packet.wire as Wire<Broadcast>) as LinkEvent<Submission, Broadcast>;
      node.link = this.replicaStep(packet.replica, node.link, event);
      this.continueLocally(packet.replica);
    } else {
      const event = heard(packet.wire as Wire<Submission>) as LinkEvent<Broadcast, Submission>;
      this.primaryLinks.set(packet.replica, this.primaryStep(packet.replica, this.primaryLinks.get(packet.replica)!, event));
      this.flush();
    }
  }

  private flush(): void {
    while (this.deferred.length > 0) this.deferred.shift()!();
  }

  private tick(): void {
    for (const r of REPLICAS) {
      this.primaryLinks.set(r, this.primaryStep(r, this.primaryLinks.get(r)!, { type: "tick" }));
      this.flush();
      const node = this.replicas.get(r)!;
      node.link = this.replicaStep(r, node.link, { type: "tick" });
      this.continueLocally(r);
    }
  }

  /** What is wrong after settling (empty when every invariant holds). */
  violations(): string[] {
    const problems: string[] = [];
    const ids = this.history.map((e) => e.origin);
    const counts = new Map<string, number>();
    for (const origin of ids) counts.set(origin, (counts.get(origin) ?? 0) + 1);
    for (const origin of this.sent) if (counts.get(origin) !== 1) problems.push(`primary history holds ${origin} ${counts.get(origin) ?? 0} times`);
    for (const r of REPLICAS) {
      const node = this.replicas.get(r)!;
      if (node.link.kind !== "active") problems.push(`replica ${r} link ${node.link.kind}`);
      if (this.primaryLinks.get(r)!.kind !== "active") problems.push(`primary link to ${r} ${this.primaryLinks.get(r)!.kind}`);
      const theirs = node.history.map((e) => `${e.id}:${e.origin}`).join(" ");
      const ours = this.history.map((e) => `${e.id}:${e.origin}`).join(" ");
      if (theirs !== ours) problems.push(`replica ${r} history [${theirs}] differs from the primary's [${ours}]`);
    }
    for (const node of NODES) {
      for (const user of USERS) {
        const got = this.inboxes.get(node)![user]!;
        const seen = new Map<string, number>();
        for (const origin of got) seen.set(origin, (seen.get(origin) ?? 0) + 1);
        for (const origin of this.sent) if (seen.get(origin) !== 1) problems.push(`user ${user} of node ${node} got ${origin} ${seen.get(origin) ?? 0} times`);
      }
    }
    return problems;
  }
}

function heard<I>(wire: Wire<I>): LinkEvent<never, I> {
  if (wire.kind === "bounce") return { type: "bounced" };
  return wire.kind === "data"
    ? { type: "heard", ack: wire.ack, carried: { seq: wire.seq, item: wire.item }, probe: false }
    : { type: "heard", ack: wire.ack, carried: null, probe: wire.probe };
}
