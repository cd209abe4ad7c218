// Per-link sequence numbers (docs/PROTOCOL.md "The reliable link"): what one side sent and the other has
// not acknowledged yet (the outbox), and how far the other side's stream has been applied here (the
// inbox). Pure data and functions: time comes in as milliseconds.

/** A stanza on the outbox: its sequence number, and when it was first transmitted (null: held, never sent). */
export interface Outgoing<T> {
  readonly seq: number;
  readonly item: T;
  readonly transmitted: number | null;
}

export interface Outbox<T> {
  /** The sequence number the next stanza gets; the first stanza of a link has 1. */
  readonly nextSeq: number;
  /** Sent or held and not acknowledged, oldest first, with consecutive sequence numbers. */
  readonly unacked: readonly Outgoing<T>[];
}

/** The highest sequence number applied here: everything up to it, and nothing after it. */
export interface Inbox {
  readonly applied: number;
}

export const emptyOutbox = <T>(): Outbox<T> => ({ nextSeq: 1, unacked: [] });
export const emptyInbox = (): Inbox => ({ applied: 0 });

/** Gives the item the next sequence number; `transmitted` is null when it is held (link not up). */
export function enqueue<T>(outbox: Outbox<T>, item: T, transmitted: number | null): { outbox: Outbox<T>; entry: Outgoing<T> } {
  const entry: Outgoing<T> = { seq: outbox.nextSeq, item, transmitted };
  return { outbox: { nextSeq: outbox.nextSeq + 1, unacked: [...outbox.unacked, entry] }, entry };
}

/**
 * A cumulative acknowledgement: everything up to `ack` arrived. An ack beyond what was ever sent (a
 * confused or hostile peer) acknowledges only what was sent.
 */
export function acknowledge<T>(outbox: Outbox<T>, ack: number): Outbox<T> {
  const first = outbox.unacked[0];
  if (!first || ack < first.seq) return outbox;
  return { ...outbox, unacked: outbox.unacked.filter((e) => e.seq > ack) };
}

/** Marks every unacknowledged stanza as (re)transmitted now: a resend starts their clocks again. */
export function retransmitAll<T>(outbox: Outbox<T>, now: number): Outbox<T> {
  return { ...outbox, unacked: outbox.unacked.map((e) => ({ ...e, transmitted: now })) };
}

/** When the oldest stanza still waiting for its ack was transmitted (null: nothing in flight). */
export function oldestInFlight<T>(outbox: Outbox<T>): number | null {
  let oldest: number | null = null;
  for (const e of outbox.unacked) if (e.transmitted !== null && (oldest === null || e.transmitted < oldest)) oldest = e.transmitted;
  return oldest;
}

/**
 * What to do with an arriving stanza: apply it (the next in order), drop it as a duplicate (applied
 * already), or drop it because an earlier one is missing (a gap: the sender resends from the gap, since
 * nothing after it is acknowledged). Receivers keep no out-of-order buffer: s2s is ordered, so a gap
 * only follows a loss, and the resend brings everything after it again.
 */
export type Arrival = "apply" | "duplicate" | "gap";

export function arrive(inbox: Inbox, seq: number): { inbox: Inbox; arrival: Arrival } {
  if (seq <= inbox.applied) return { inbox, arrival: "duplicate" };
  if (seq > inbox.applied + 1) return { inbox, arrival: "gap" };
  return { inbox: { applied: seq }, arrival: "apply" };
}
