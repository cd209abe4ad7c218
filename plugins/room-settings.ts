// The muc#roomconfig fields that only store a setting read elsewhere (XEP-0045 §10.2): name,
// description, language, persistence, visibility, subject and invitation rights, PMs, whois.
import type { Plugin } from "../src/core/service.js";
import { booleanField, choiceField, configField, singleValue, textField, type ConfigFieldSpec } from "../src/core/room/config-fields.js";
import { StanzaError } from "../src/core/stanza-error.js";
import type { Role } from "../src/core/room/types.js";

const ROOMCONFIG = "muc#roomconfig_";

const historyLength = (max: number): ConfigFieldSpec => ({
  var: "muc#roomconfig_historylength",
  label: "Number of messages to keep as history",
  type: "text-single",
  order: 90,
  read: (config) => [String(config.historyLength)],
  write: (config, values) => {
    const value = singleValue("muc#roomconfig_historylength", values)?.trim() ?? "";
    if (!/^\d{1,9}$/.test(value)) throw new StanzaError("modify", "not-acceptable", "History length must be a whole number");
    config.historyLength = Math.min(Number(value), max);
  },
});

// "none" broadcasts the absence of members: they are shown as unavailable to those entering.
const BROADCAST_ROLES: Role[] = ["moderator", "participant", "visitor", "none"];

const presenceBroadcast: ConfigFieldSpec = {
  var: "muc#roomconfig_presencebroadcast",
  label: "Roles whose presence is broadcast",
  type: "list-multi",
  order: 96,
  options: BROADCAST_ROLES.map((role) => ({ value: role, label: role })),
  read: (config) => [...config.presenceBroadcast],
  write: (config, values) => {
    if (!values.every((v) => (BROADCAST_ROLES as string[]).includes(v))) throw new StanzaError("modify", "not-acceptable", "Unknown role in presence broadcast");
    config.presenceBroadcast = BROADCAST_ROLES.filter((role) => values.includes(role));
  },
};

export function roomSettingsPlugin(options: { maxHistoryMessages: number }): Plugin {
  return {
    name: "room-settings",
    register({ rooms }) {
      const fields: ConfigFieldSpec[] = [
        textField(`${ROOMCONFIG}roomname`, "Title", "name", 10, 200),
        textField(`${ROOMCONFIG}roomdesc`, "Description", "description", 20, 2000),
        textField(`${ROOMCONFIG}lang`, "Language tag for room (e.g. 'en', 'de', 'fr' etc.)", "language", 30, 35),
        booleanField(`${ROOMCONFIG}persistentroom`, "Persistent (room should remain even when it is unoccupied)", "persistent", 40),
        booleanField(`${ROOMCONFIG}publicroom`, "Include room information in public lists", "public", 50),
        booleanField(`${ROOMCONFIG}changesubject`, "Allow anyone to set the room's subject", "changeSubject", 60),
        booleanField(`${ROOMCONFIG}allowinvites`, "Allow members to invite new members", "allowInvites", 70),
        choiceField(`${ROOMCONFIG}allowpm`, "Allow private messages from", "allowPm", [
          { value: "anyone", label: "Everyone", setting: "anyone" },
          { value: "participants", label: "Participants", setting: "participants" },
          { value: "moderators", label: "Moderators", setting: "moderators" },
          { value: "none", label: "No one", setting: "none" },
        ], 80),
        historyLength(options.maxHistoryMessages),
        booleanField(`${ROOMCONFIG}moderatedroom`, "Moderated (only occupants with voice may speak)", "moderated", 95),
        presenceBroadcast,
        booleanField("dmuc#roomconfig_splitchat", "During a netsplit, let users on the same server go on talking", "splitChat", 130),
        choiceField(`${ROOMCONFIG}whois`, "Addresses (JIDs) of room occupants may be viewed by", "whois", [
          { value: "moderators", label: "Moderators only", setting: "moderators" },
          { value: "anyone", label: "Anyone", setting: "anyone" },
        ], 100),
      ];
      for (const field of fields) configField(rooms, field);
    },
  };
}
