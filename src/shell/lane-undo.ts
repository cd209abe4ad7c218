// Undoing a room's stanzas whose writes the database could not take in time (issue 15, the outage).
//
// The engine changes a room in memory at once and its writes wait in the effect runner's lane for the
// room. When they have waited too long, the runner takes the lane's units out unstored and unsent and
// the gateway puts the room back as it was before the first of them (the room is immutable data: the
// old value is the undo), then answers each stanza: `wait`/`resource-constraint` to messages, entries,
// nick changes and IQs; an exit is handled again (leaving is never refused); a presence update of an
// occupant who stays is dropped (an error presence would make clients think they left the room).
//
// A room can be put back only while nothing else changed it or depends on its stanzas: the record is
// pinned (its units wait for the database, as before) when the room was changed from outside its lane
// (the timer, an administrator, the service) or when its stanzas changed its DMUC2 links or copy, or
// tombstones.
import type { Element } from "@xmpp/xml";
import type { Room } from "../core/room/types.js";
import type { ServiceState } from "../core/service.js";

interface LaneRecord {
  /** The room before the lane's first queued stanza (undefined: it did not exist). */
  readonly before: Room | undefined;
  /** The room as the lane's own stanzas left it: anything else means someone else changed it. */
  expected: Room | undefined;
  pinned: boolean;
}

export class LaneUndo {
  private readonly lanes = new Map<string, LaneRecord>();

  /**
   * A stanza of `lane` took the state from `before` to `after`; `queuedBefore` says whether the lane
   * already had units waiting, `queuedAfter` whether it has now.
   */
  handled(lane: string, before: ServiceState, after: ServiceState, queuedBefore: boolean, queuedAfter: boolean): void {
    if (!queuedAfter) {
      this.lanes.delete(lane);
      return;
    }
    let record = this.lanes.get(lane);
    if (!queuedBefore) {
      record = { before: before.rooms.get(lane), expected: undefined, pinned: lane === "" };
      this.lanes.set(lane, record);
    } else if (!record) {
      // Units queued by someone else first (e.g. an archive read's answer): this lane cannot be undone.
      return;
    } else if (before.rooms.get(lane) !== record.expected) {
      record.pinned = true;
    }
    record.expected = after.rooms.get(lane);
    // The room's DMUC2 links or replicated copy, or a tombstone, depend on it now. (A remote domain being
    // probed does not: it concerns no room, and what it finds is applied to the rooms as they are then.)
    const { dmuc: d0 } = before;
    const { dmuc: d1 } = after;
    if (d0.links.get(lane) !== d1.links.get(lane) || d0.replicated.get(lane) !== d1.replicated.get(lane) || before.tombstones !== after.tombstones) record.pinned = true;
  }

  /** Whether the lane's room can be put back as it was before its queued stanzas, in `state`. */
  mayUndo(lane: string, state: ServiceState): boolean {
    const record = this.lanes.get(lane);
    return record !== undefined && !record.pinned && state.rooms.get(lane) === record.expected;
  }

  /** `state` with the lane's room put back; the record is gone (the lane is idle). */
  undo(lane: string, state: ServiceState): ServiceState {
    const record = this.lanes.get(lane)!;
    this.lanes.delete(lane);
    const rooms = record.before ? state.rooms.with(lane, record.before) : state.rooms.without(lane);
    return { ...state, rooms };
  }

  idle(lane: string): void {
    this.lanes.delete(lane);
  }

  /** What to do with a withdrawn stanza, given the room as it is put back. */
  static answerFor(stanza: Element, room: Room | undefined): "refuse" | "again" | "drop" {
    if (stanza.name !== "presence") return "refuse";
    if (stanza.attrs.type === "unavailable") return "again";
    const from = String(stanza.attrs.from ?? "");
    const nick = String(stanza.attrs.to ?? "").split("/")[1];
    for (const occupant of room?.occupants.values() ?? []) {
      if (occupant.sessions.has(from)) return occupant.nick === nick ? "drop" : "refuse";
    }
    return "refuse";
  }
}
