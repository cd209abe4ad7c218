// XEP-0045 §7.10 (registering with a room), §7.12 (discovering one's reserved nick) and reserved-nick
// enforcement on entering. A registration is a member affiliation (or the user's higher one) that
// carries the reserved nick. As in Prosody, only affiliated users may register: unaffiliated users
// get registration-required, outcasts forbidden.
import xml, { type Element } from "@xmpp/xml";
import type { Plugin } from "../src/core/service.js";
import { StanzaError, badRequest, withAudit } from "../src/core/stanza-error.js";
import { reservedNickOwner, setAffiliation } from "../src/core/room/affiliations.js";
import type { RoomIq } from "../src/core/room/engine.js";
import { prepareNick } from "../src/core/room/nick.js";
import { buildForm, parseForm, formValues } from "../src/xmpp/forms.js";
import { NS } from "../src/xmpp/stanza.js";

export const MUC_REGISTER = "http://jabber.org/protocol/muc#register";
const NICK_FIELD = "muc#register_roomnick";
/** XEP-0045 §7.12: the disco#info node that answers with the requester's reserved nick. */
export const ROOMUSER_NODE = "x-roomuser-item";

const registrationForm = () =>
  buildForm({
    type: "form",
    formType: MUC_REGISTER,
    title: "Room registration",
    instructions: "Choose the nickname to reserve in this room.",
    fields: [{ var: NICK_FIELD, type: "text-single", label: "Nickname", values: [], required: true }],
  });

/** Who may register at all (Prosody's default, allow_unaffiliated_register = false). */
function checkMayRegister({ affiliation, target }: RoomIq): void {
  if (affiliation === "outcast") throw new StanzaError("auth", "forbidden", "You are banned from this room", { by: target.jid });
  if (affiliation === "none") throw new StanzaError("auth", "registration-required", "Only members may register with this room", { by: target.jid });
}

export const registerPlugin: Plugin = {
  name: "register",
  register({ rooms }) {
    rooms.hooks.on("room/disco-info", ({ info }) => {
      info.features.add(NS.REGISTER);
    });

    // §7.12: an identity named after the reserved nick; an empty answer when there is none.
    rooms.hooks.on("room/disco-node", ({ request, room, node, info }) => {
      if (node !== ROOMUSER_NODE) return undefined;
      const nick = room.affiliations.get(request.fromBare)?.nick;
      if (nick !== undefined) info.identities.push({ category: "conference", type: "text", name: nick });
      return true;
    });

    // Someone else's reserved nick may not be taken (§7.10, conflict); the owner of the nick may.
    rooms.hooks.on(
      "occupant/pre-join",
      ({ request, room, nick }) => {
        const owner = reservedNickOwner(room, nick);
        return owner !== undefined && owner !== request.fromBare ? new StanzaError("cancel", "conflict", "That nickname is reserved") : undefined;
      },
      40,
    );

    rooms.iq.get(NS.REGISTER, "query", (iq) => {
      checkMayRegister(iq);
      const nick = iq.target.affiliations.get(iq.request.fromBare)?.nick;
      // §7.10 example 68: an existing registration is reported with <registered/> and the nick.
      if (nick !== undefined) return xml("query", { xmlns: NS.REGISTER }, xml("registered"), xml("username", {}, nick));
      return xml("query", { xmlns: NS.REGISTER }, registrationForm());
    });

    rooms.iq.set(NS.REGISTER, "query", (iq, query) => {
      try {
        return registration(iq, query);
      } catch (err) {
        if (!(err instanceof StanzaError)) throw err;
        // A refused registration is audited: who tried, and why it was refused.
        const { request, target } = iq;
        throw withAudit(err, {
          kind: "registration.refused",
          roomJid: target.jid,
          actorJid: request.fromBare,
          subjectJid: request.fromBare,
          details: { jid: request.fromFull, condition: err.spec.condition, text: err.spec.text },
        });
      }
    });

    function registration(iq: RoomIq, query: Element): Element | null {
      checkMayRegister(iq);
      const { request, target, affiliation } = iq;
      const jid = request.fromBare;
      const current = target.affiliations.get(jid);

      if (query.getChild("remove")) {
        // Deregistering drops membership and the reserved nick; a higher affiliation stays.
        const entry = affiliation === "member" || !current ? null : { affiliation: current.affiliation, ...(current.reason ? { reason: current.reason } : {}) };
        iq.room = setAffiliation(rooms.hooks, request, target, { jid, entry, actorJid: jid });
        return null;
      }

      const form = parseForm(query.getChild("x", NS.DATA_FORMS));
      if (!form) throw badRequest("Missing data form");
      if (form.type === "cancel") return null;
      if (form.type !== "submit") throw badRequest("Expected a submitted form");
      if (form.formType !== MUC_REGISTER) throw badRequest(`FORM_TYPE must be ${MUC_REGISTER}`);
      const raw = formValues(form).get(NICK_FIELD)?.[0];
      if (raw === undefined || raw === "") throw badRequest("A nickname is required");
      const nick = prepareNick(raw);
      if (nick === null) throw badRequest("Invalid nickname");

      const holder = target.occupants.get(nick);
      if (holder && holder.bareJid !== jid) throw new StanzaError("cancel", "conflict", "That nickname is in use", { by: target.jid });
      const owner = reservedNickOwner(target, nick);
      if (owner !== undefined && owner !== jid) throw new StanzaError("cancel", "conflict", "That nickname is reserved", { by: target.jid });
      if (current?.nick === nick) return null;

      const entry = { ...(current ?? { affiliation: "member" as const }), nick };
      iq.room = setAffiliation(rooms.hooks, request, target, { jid, entry, actorJid: jid });
      return null;
    }
  },
};
