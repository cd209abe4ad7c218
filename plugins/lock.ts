// XEP-0045 §10.1: a new room is locked until its owner submits (or accepts) the configuration;
// anyone else trying to enter meanwhile gets item-not-found, as if the room did not exist.
import type { Plugin } from "../src/core/service.js";
import { StanzaError } from "../src/core/stanza-error.js";

export const lockPlugin: Plugin = {
  name: "lock",
  register({ rooms }) {
    rooms.hooks.on("room/created", (event) => {
      event.room = { ...event.room, locked: true };
    });
    rooms.hooks.on(
      "occupant/pre-join",
      ({ room, affiliation }) => {
        if (room.locked && affiliation !== "owner") return new StanzaError("cancel", "item-not-found", "This room is locked until its owner configures it");
        return undefined;
      },
      30,
    );
    // Submitting the configuration form (an instant room is an empty submission) unlocks the room.
    rooms.hooks.on("room/config-changed", (event) => {
      if (event.room.locked) event.room = { ...event.room, locked: false };
    }, 100);
  },
};
