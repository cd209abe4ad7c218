import { test } from "node:test";
import assert from "node:assert/strict";
import { RoomTable } from "../../src/core/room-table.js";
import { newRoom } from "../../src/core/room/types.js";

test("a room table is an immutable map: changes make a new table and leave the old one", () => {
  const a = RoomTable.empty().with("a@muc", newRoom("a@muc")).with("b@muc", newRoom("b@muc"));
  const b = a.with("c@muc", newRoom("c@muc")).without("a@muc");
  assert.deepEqual([...a.keys()].sort(), ["a@muc", "b@muc"]);
  assert.deepEqual([...b.keys()].sort(), ["b@muc", "c@muc"]);
  assert.equal(a.size, 2);
  assert.equal(b.size, 2);
  assert.equal(b.get("b@muc"), a.get("b@muc"), "unchanged rooms are shared");
  assert.equal(a.with("a@muc", newRoom("a@muc")).size, 2, "replacing does not grow it");
  assert.equal(a.without("zzz@muc"), a);
  const many = RoomTable.from(Array.from({ length: 1000 }, (_, i) => [`r${i}@muc`, newRoom(`r${i}@muc`)] as [string, ReturnType<typeof newRoom>]));
  assert.equal(many.size, 1000);
  assert.equal([...many.values()].length, 1000);
  assert.ok(many.has("r999@muc") && !many.has("r1000@muc"));
});
