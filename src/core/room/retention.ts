// How long a room's messages and audit rows are kept (docs/AUDIT.md, Retention): the room's own
// setting when the operator's limits allow it, the service's otherwise. Pure: the shell's purge and
// the engine's replay of history both decide with it.
import type { RetentionLimits } from "../service.js";

const DAY_MS = 86_400_000;

/** Days (0: forever). A setting the limits no longer allow counts as unset. */
export function effectiveRetentionDays(limits: RetentionLimits, roomDays: unknown): number {
  if (typeof roomDays !== "number" || !Number.isInteger(roomDays) || roomDays < 0) return limits.defaultDays;
  if (roomDays === 0) return limits.maxDays === 0 ? 0 : limits.defaultDays;
  if (roomDays < limits.minDays || (limits.maxDays > 0 && roomDays > limits.maxDays)) return limits.defaultDays;
  return roomDays;
}

/** The oldest time still kept at `now`, or null when everything is kept. */
export function retentionCutoff(limits: RetentionLimits, roomDays: unknown, now: Date): Date | null {
  const days = effectiveRetentionDays(limits, roomDays);
  return days === 0 ? null : new Date(now.getTime() - days * DAY_MS);
}
