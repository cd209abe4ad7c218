// An immutable map that shares structure, for per-stanza bookkeeping (flood buckets) that must not
// cost O(size) per change: a change copies one of 64 buckets and the bucket array, as RoomTable does.
const BUCKETS = 64;

function bucketOf(key: string): number {
  let hash = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % BUCKETS;
}

export class SharedMap<V> {
  private constructor(
    private readonly buckets: readonly ReadonlyMap<string, V>[],
    readonly size: number,
  ) {}

  static empty<V>(): SharedMap<V> {
    return new SharedMap<V>(new Array<ReadonlyMap<string, V>>(BUCKETS).fill(new Map()), 0);
  }

  get(key: string): V | undefined {
    return this.buckets[bucketOf(key)]!.get(key);
  }

  with(key: string, value: V): SharedMap<V> {
    const index = bucketOf(key);
    const old = this.buckets[index]!;
    const buckets = this.buckets.slice();
    buckets[index] = new Map(old).set(key, value);
    return new SharedMap(buckets, this.size + (old.has(key) ? 0 : 1));
  }

  without(key: string): SharedMap<V> {
    const index = bucketOf(key);
    const old = this.buckets[index]!;
    if (!old.has(key)) return this;
    const bucket = new Map(old);
    bucket.delete(key);
    const buckets = this.buckets.slice();
    buckets[index] = bucket;
    return new SharedMap(buckets, this.size - 1);
  }

  *entries(): IterableIterator<[string, V]> {
    for (const bucket of this.buckets) yield* bucket.entries();
  }

  /** The entries for which `keep` holds; this map when all do. O(size): for timers, not per stanza. */
  filter(keep: (value: V, key: string) => boolean): SharedMap<V> {
    let size = this.size;
    let changed = false;
    const buckets = this.buckets.map((bucket) => {
      let copy: Map<string, V> | undefined;
      for (const [key, value] of bucket) {
        if (keep(value, key)) continue;
        copy ??= new Map(bucket);
        copy.delete(key);
        size--;
      }
      if (copy) changed = true;
      return copy ?? bucket;
    });
    return changed ? new SharedMap(buckets, size) : this;
  }
}
