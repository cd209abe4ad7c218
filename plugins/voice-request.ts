// XEP-0045 §7.13 and §8.6: a visitor asks for voice with a muc#request form; the room sends every
// moderator an approval form, and a moderator who submits it with muc#request_allow grants voice.
import xml from "@xmpp/xml";
import { send } from "../src/core/effects.js";
import type { Plugin } from "../src/core/service.js";
import { StanzaError } from "../src/core/stanza-error.js";
import { occupantOfSession } from "../src/core/room/mutate.js";
import { addressed } from "../src/core/room/presence.js";
import { buildForm, formValues, parseFormBoolean, parseForm } from "../src/xmpp/forms.js";
import { NS } from "../src/xmpp/stanza.js";
import { setRole } from "./moderation.js";

export const voiceRequestPlugin: Plugin = {
  name: "voice-request",
  register({ rooms }) {
    rooms.onRoomMessage((request, room) => {
      const form = parseForm(request.stanza.getChild("x", NS.DATA_FORMS));
      if (!form || form.formType !== NS.MUC_REQUEST || form.type !== "submit") return undefined;
      const sender = occupantOfSession(room, request.fromFull);
      if (!sender) throw new StanzaError("modify", "not-acceptable", "You are not currently connected to this chat", { by: room.jid });
      const values = formValues(form);

      if (values.has("muc#request_allow")) {
        // A moderator's answer to an approval form.
        if (sender.role !== "moderator") throw new StanzaError("auth", "forbidden", "Only moderators may grant voice", { by: room.jid });
        if (parseFormBoolean(values.get("muc#request_allow")?.[0]) !== true) return room;
        const nick = values.get("muc#roomnick")?.[0];
        if (!nick || !room.occupants.has(nick)) throw new StanzaError("cancel", "item-not-found", "No occupant with that nickname", { by: room.jid });
        return setRole(rooms.hooks, request, room, nick, "participant", undefined);
      }

      if (values.get("muc#role")?.[0] !== "participant") throw new StanzaError("modify", "bad-request", "Only voice (the participant role) can be requested", { by: room.jid });
      if (sender.role !== "visitor") return room; // already has voice: nothing to ask
      const approval = xml(
        "message",
        { from: room.jid, id: request.context.newId() },
        buildForm({
          type: "form",
          formType: NS.MUC_REQUEST,
          title: "Voice request",
          instructions: 'To approve this request for voice, select the "Grant voice to this person?" checkbox and click OK. To skip this request, click the cancel button.',
          fields: [
            { var: "muc#role", type: "list-single", label: "Requested role", values: ["participant"] },
            { var: "muc#jid", type: "jid-single", label: "User ID", values: [request.fromFull] },
            { var: "muc#roomnick", type: "text-single", label: "Room Nickname", values: [sender.nick] },
            { var: "muc#request_allow", type: "boolean", label: "Grant voice to this person?", values: ["false"] },
          ],
        }),
      );
      for (const moderator of room.occupants.values()) {
        if (moderator.role !== "moderator") continue;
        for (const jid of moderator.sessions.keys()) request.effects.push(send(addressed(approval, jid)));
      }
      return room;
    });
  },
};
