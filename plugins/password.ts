// XEP-0045 §7.2.6: a password-protected room refuses entry (401 not-authorized) without it.
import type { Plugin } from "../src/core/service.js";
import { StanzaError } from "../src/core/stanza-error.js";
import { configField, textField } from "../src/core/room/config-fields.js";

export const passwordPlugin: Plugin = {
  name: "password",
  register({ rooms }) {
    configField(rooms, {
      var: "muc#roomconfig_passwordprotectedroom",
      label: "Password protected",
      type: "boolean",
      order: 199,
      read: (config) => [config.password ? "1" : "0"],
      // The secret field alone decides; this one is informative, as in Prosody.
      write: () => undefined,
    });
    configField(rooms, textField("muc#roomconfig_roomsecret", "Password", "password", 200, 1000, "text-private"));
    rooms.hooks.on("room/disco-info", ({ room, info }) => {
      info.features.add(room.config.password ? "muc_passwordprotected" : "muc_unsecured");
    });
    rooms.hooks.on(
      "occupant/pre-join",
      ({ room, join, affiliation }) => {
        if (!room.config.password || affiliation === "owner") return undefined;
        if (join.getChildText("password") === room.config.password) return undefined;
        return new StanzaError("auth", "not-authorized", "A password is required to enter this room");
      },
      -20,
    );
  },
};
