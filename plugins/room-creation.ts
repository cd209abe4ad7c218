// Who may create rooms (DMUC_ROOM_CREATION), as Prosody's restrict_room_creation: "admin" (service
// administrators only), "local" (users of the server the service belongs to, and administrators), or
// "everyone". Others get Prosody's answer: not-allowed, "Room creation is restricted".
import type { Plugin } from "../src/core/service.js";
import { StanzaError } from "../src/core/stanza-error.js";

export const roomCreationPlugin: Plugin = {
  name: "room-creation",
  register({ settings, rooms }) {
    const policy = settings.roomCreation ?? "everyone";
    if (policy === "everyone") return;
    rooms.hooks.on("room/pre-create", ({ request }) => {
      if (settings.admins.has(request.fromBare)) return undefined;
      if (policy === "local" && settings.localDomain !== undefined && request.from.domain === settings.localDomain) return undefined;
      return new StanzaError("cancel", "not-allowed", "Room creation is restricted", { by: settings.domain });
    });
  },
};
