// The service's rooms, as an immutable map that shares structure: a change copies one bucket of rooms
// and the bucket array, not every room. Copying a whole Map per stanza cost 5.4 ms with 10,000 rooms
// (bench/RESULTS.md, scale), capping one process near 180 room stanzas/s.
import type { Room } from "./room/types.js";

const BUCKETS = 256;

function bucketOf(jid: string): number {
  // FNV-1a: cheap and spreads JIDs that differ in one character.
  let hash = 0x811c9dc5;
  for (let i = 0; i < jid.length; i++) hash = Math.imul(hash ^ jid.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % BUCKETS;
}

const NONE: ReadonlyMap<string, Room> = new Map();

export class RoomTable implements ReadonlyMap<string, Room> {
  private constructor(
    private readonly buckets: readonly ReadonlyMap<string, Room>[],
    readonly size: number,
  ) {}

  static empty(): RoomTable {
    return new RoomTable(new Array<ReadonlyMap<string, Room>>(BUCKETS).fill(NONE), 0);
  }

  static from(rooms: Iterable<[string, Room]>): RoomTable {
    const buckets = Array.from({ length: BUCKETS }, () => new Map<string, Room>());
    let size = 0;
    for (const [jid, room] of rooms) {
      const bucket = buckets[bucketOf(jid)]!;
      if (!bucket.has(jid)) size++;
      bucket.set(jid, room);
    }
    return new RoomTable(buckets, size);
  }

  get(jid: string): Room | undefined {
    return this.buckets[bucketOf(jid)]!.get(jid);
  }

  has(jid: string): boolean {
    return this.buckets[bucketOf(jid)]!.has(jid);
  }

  /** A table with `room` under `jid`; this one is unchanged. */
  with(jid: string, room: Room): RoomTable {
    const index = bucketOf(jid);
    const bucket = new Map(this.buckets[index]!).set(jid, room);
    const buckets = this.buckets.slice();
    buckets[index] = bucket;
    return new RoomTable(buckets, this.size + (this.buckets[index]!.has(jid) ? 0 : 1));
  }

  /** A table without `jid`; this one is unchanged. */
  without(jid: string): RoomTable {
    const index = bucketOf(jid);
    if (!this.buckets[index]!.has(jid)) return this;
    const bucket = new Map(this.buckets[index]!);
    bucket.delete(jid);
    const buckets = this.buckets.slice();
    buckets[index] = bucket;
    return new RoomTable(buckets, this.size - 1);
  }

  *entries(): MapIterator<[string, Room]> {
    for (const bucket of this.buckets) if (bucket.size > 0) yield* bucket.entries();
  }

  *keys(): MapIterator<string> {
    for (const bucket of this.buckets) if (bucket.size > 0) yield* bucket.keys();
  }

  *values(): MapIterator<Room> {
    for (const bucket of this.buckets) if (bucket.size > 0) yield* bucket.values();
  }

  [Symbol.iterator](): MapIterator<[string, Room]> {
    return this.entries();
  }

  forEach(callback: (room: Room, jid: string, table: ReadonlyMap<string, Room>) => void): void {
    for (const [jid, room] of this.entries()) callback(room, jid, this);
  }
}
