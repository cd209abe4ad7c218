// Service administrators (DMUC_ADMINS). They are owners of every room: that rule lives in
// affiliationOf (src/core/room/privileges.ts). This plugin gives them the XEP-0050 ad-hoc command
// that destroys rooms from the service itself; its node is Prosody's, so existing admin clients and
// Prosody's tests can use it: execute -> form (the rooms) -> submit -> completed, with a note.
import xml, { type Element } from "@xmpp/xml";
import type { Plugin, ServiceRequest } from "../src/core/service.js";
import { StanzaError, badRequest, forbidden, itemNotFound } from "../src/core/stanza-error.js";
import type { RoomRequest } from "../src/core/room/api.js";
import { buildForm } from "../src/xmpp/forms.js";
import { bareString, jidToString, parseBareJid } from "../src/xmpp/jid.js";
import { NS } from "../src/xmpp/stanza.js";
import { destroyRoom } from "./owner.js";
import { withStoredTombstones } from "../src/core/tombstones.js";

export const DESTROY_NODE = "http://prosody.im/protocol/muc#destroy";
const ROOMS_FIELD = "rooms";

const isAdmin = (request: ServiceRequest) => request.settings.admins.has(bareString(request.from));

function commandReply(node: string, sessionid: string, status: "executing" | "completed" | "canceled", ...children: (Element | null)[]): Element {
  return xml("command", { xmlns: NS.COMMANDS, node, sessionid, status }, ...children);
}

/** The first step: a form listing every room, to pick the ones to destroy. */
function destroyForm(request: ServiceRequest, sessionid: string): Element {
  const rooms = [...request.state.rooms.keys()].sort();
  return commandReply(
    DESTROY_NODE,
    sessionid,
    "executing",
    xml("actions", { execute: "complete" }, xml("complete")),
    buildForm({
      type: "form",
      title: "Destroy rooms",
      instructions: "Select the rooms to destroy.",
      fields: [{ var: ROOMS_FIELD, type: "list-multi", label: "Rooms to destroy", required: true, values: [], options: rooms.map((value) => ({ value })) }],
    }),
  );
}

/** The submitted step: destroys the chosen rooms (their occupants get <destroy/>, §10.9). */
function destroyRooms(request: ServiceRequest, form: Element, sessionid: string): Element {
  const field = form.getChildren("field").find((f) => f.attrs.var === ROOMS_FIELD);
  const jids = (field?.getChildren("value") ?? []).map((v) => v.getText().trim()).filter((v) => v !== "");
  if (jids.length === 0) throw badRequest("Select at least one room");
  let rooms = request.state.rooms;
  const destroyed: string[] = [];
  for (const text of jids) {
    const jid = parseBareJid(text);
    const room = jid ? rooms.get(jidToString(jid)) : undefined;
    if (!room) continue;
    const roomRequest: RoomRequest = {
      settings: request.settings,
      context: request.context,
      stanza: request.stanza,
      from: request.from,
      fromFull: jidToString(request.from),
      fromBare: bareString(request.from),
      roomJid: room.jid,
      nick: null,
      effects: request.effects,
    };
    destroyRoom(roomRequest, room);
    rooms = rooms.without(room.jid);
    destroyed.push(room.jid);
  }
  request.state = withStoredTombstones({ ...request.state, rooms }, request.effects);
  const note = destroyed.length > 0 ? `The following rooms were destroyed:\n${destroyed.join("\n")}` : "No such rooms";
  return commandReply(DESTROY_NODE, sessionid, "completed", xml("note", { type: destroyed.length > 0 ? "info" : "warn" }, note));
}

export const serviceAdminPlugin: Plugin = {
  name: "service-admin",
  register({ hooks, serviceIq }) {
    hooks.on("service/disco-info", ({ info }) => {
      info.features.add(NS.COMMANDS);
    });
    // XEP-0050 §2.2: the command list; only administrators see commands they could run.
    hooks.on("service/disco-items", ({ request, node }) => {
      if (node !== NS.COMMANDS) return undefined;
      return isAdmin(request) ? [{ jid: request.settings.domain, node: DESTROY_NODE, name: "Destroy rooms" }] : [];
    });

    serviceIq.set(NS.COMMANDS, "command", (request, command) => {
      if (command.attrs.node !== DESTROY_NODE) throw itemNotFound("No such command");
      if (!isAdmin(request)) throw forbidden("Only service administrators may run this command");
      // The form carries everything, so the command keeps no session state: any sessionid is echoed.
      const sessionid = command.attrs.sessionid ?? request.context.newId();
      const action = command.attrs.action ?? "execute";
      if (action === "cancel") return commandReply(DESTROY_NODE, sessionid, "canceled");
      if (action !== "execute" && action !== "complete") throw new StanzaError("modify", "bad-request", "Unsupported action");
      const form = command.getChild("x", NS.DATA_FORMS);
      if (form?.attrs.type === "cancel") return commandReply(DESTROY_NODE, sessionid, "canceled");
      // Prosody's clients submit the form without a type; anything but a cancel is a submission.
      return form ? destroyRooms(request, form, sessionid) : destroyForm(request, sessionid);
    });
  },
};
