// The audit trail's room-level parts (docs/AUDIT.md): the room's retention setting, which an owner
// may choose within the operator's limits, and which DMUC2 replica served an entry.
import { audit, type Effect } from "../src/core/effects.js";
import type { Plugin, RetentionLimits } from "../src/core/service.js";
import { StanzaError } from "../src/core/stanza-error.js";
import { configField } from "../src/core/room/config-fields.js";
import { retentionCutoff } from "../src/core/room/retention.js";

export const RETENTION_FIELD = "dmuc#roomconfig_retentiondays";
const FOREVER: RetentionLimits = { defaultDays: 0, minDays: 1, maxDays: 0 };

function describeLimits(limits: RetentionLimits): string {
  const upper = limits.maxDays === 0 ? "0 for forever" : `at most ${limits.maxDays}`;
  const fallback = limits.defaultDays === 0 ? "forever" : `${limits.defaultDays} days`;
  return `Days to keep the room's messages and audit trail (at least ${limits.minDays}, ${upper}; empty: the service's, ${fallback})`;
}

/** An owner's choice, checked against the operator's limits; null: the service's retention. */
export function parseRetention(value: string, limits: RetentionLimits): number | null {
  const text = value.trim();
  if (text === "") return null;
  if (!/^\d{1,6}$/.test(text)) throw new StanzaError("modify", "not-acceptable", "Retention must be a whole number of days");
  const days = Number(text);
  if (days === 0 && limits.maxDays === 0) return 0;
  if (days === 0 || days < limits.minDays || (limits.maxDays > 0 && days > limits.maxDays)) {
    throw new StanzaError("modify", "not-acceptable", describeLimits(limits).replace(/^Days/, "Retention must be the days"));
  }
  return days;
}

export const auditPlugin: Plugin = {
  name: "audit",
  register({ rooms, hooks, settings }) {
    const limits = settings.retention ?? FOREVER;
    configField(rooms, {
      var: RETENTION_FIELD,
      label: describeLimits(limits),
      type: "text-single",
      order: 140,
      read: (config) => [config.retentionDays === null ? "" : String(config.retentionDays)],
      write: (config, values) => {
        config.retentionDays = parseRetention(values[0] ?? "", limits);
      },
    });

    // Before the history is replayed (priority 20): messages past the room's retention, purged from
    // the database by the shell, are no longer replayed from memory either.
    rooms.hooks.on(
      "occupant/joined",
      (event) => {
        const cutoff = retentionCutoff(limits, event.room.config.retentionDays, event.request.context.now);
        if (cutoff === null || event.room.history.length === 0 || event.room.history[0]!.at >= cutoff) return;
        event.room = { ...event.room, history: event.room.history.filter((entry) => entry.at >= cutoff) };
      },
      30,
    );

    // After DMUC2 planned delivery (priority 0): an entry served by a replica names it.
    hooks.on(
      "service/room-handled",
      ({ request, roomJid }) => {
        const links = request.state.dmuc.links.get(roomJid);
        if (!links || links.size === 0) return;
        request.effects.forEach((effect: Effect, i) => {
          if (effect.kind !== "audit" || effect.record.kind !== "occupant.entered") return;
          const session = effect.record.details.jid;
          const link = [...links.values()].find((l) => typeof session === "string" && l.members.has(session));
          if (link) request.effects[i] = audit({ ...effect.record, details: { ...effect.record.details, via: link.replicaJid } });
        });
      },
      -100,
    );
  },
};
