// Who may enter (XEP-0045 §7.2.7-§7.2.10): outcasts never (403), non-members not into a
// members-only room (407), nobody into a full room (503) except owners and admins.
import type { Plugin } from "../src/core/service.js";
import { StanzaError } from "../src/core/stanza-error.js";
import { booleanField, configField, singleValue, type ConfigFieldSpec } from "../src/core/room/config-fields.js";
import { AFFILIATION_RANK } from "../src/core/room/privileges.js";

const maxUsersField: ConfigFieldSpec = {
  var: "muc#roomconfig_maxusers",
  label: "Maximum number of occupants",
  type: "list-single",
  order: 110,
  options: ["none", "10", "20", "30", "50", "100", "500", "1000"].map((value) => ({ value, label: value })),
  read: (config) => [config.maxUsers === null ? "none" : String(config.maxUsers)],
  write: (config, values) => {
    const value = singleValue("muc#roomconfig_maxusers", values)?.trim() ?? "";
    if (value === "none" || value === "" || value === "0") config.maxUsers = null;
    else if (/^\d{1,9}$/.test(value)) config.maxUsers = Number(value);
    else throw new StanzaError("modify", "not-acceptable", "Maximum occupants must be a whole number or 'none'");
  },
};

export const accessPlugin: Plugin = {
  name: "access",
  register({ rooms }) {
    configField(rooms, booleanField("muc#roomconfig_membersonly", "Only allow members to join", "membersOnly", 120));
    configField(rooms, maxUsersField);
    rooms.hooks.on("room/disco-info", ({ room, info }) => {
      info.features.add(room.config.membersOnly ? "muc_membersonly" : "muc_open");
    });
    rooms.hooks.on(
      "occupant/pre-join",
      ({ affiliation }) => (affiliation === "outcast" ? new StanzaError("auth", "forbidden", "You have been banned from this room") : undefined),
      50,
    );
    rooms.hooks.on(
      "occupant/pre-join",
      ({ room, affiliation }) =>
        room.config.membersOnly && AFFILIATION_RANK[affiliation] < AFFILIATION_RANK.member
          ? new StanzaError("auth", "registration-required", "Membership is required to enter this room")
          : undefined,
      -10,
    );
    rooms.hooks.on(
      "occupant/pre-join",
      ({ room, affiliation }) =>
        room.config.maxUsers !== null && room.occupants.size >= room.config.maxUsers && AFFILIATION_RANK[affiliation] < AFFILIATION_RANK.admin
          ? new StanzaError("wait", "service-unavailable", "This room is full")
          : undefined,
      -30,
    );
  },
};
