// Service administrators (DMUC_ADMINS). They are owners of every room: that rule lives in
// affiliationOf (src/core/room/privileges.ts). This plugin gives them XEP-0050 ad-hoc commands on the
// service itself: Prosody's "destroy rooms" (its node, so existing admin clients and Prosody's tests
// can use it: execute -> form (the rooms) -> submit -> completed, with a note), and the operator's
// commands that `dmuc-gateway rooms ...` also runs (plugins/admin-commands.ts): list rooms, room
// info, create a room, destroy a room with a reason and an alternate venue, list occupants.
import xml, { type Element } from "@xmpp/xml";
import type { Plugin, ServiceRequest } from "../src/core/service.js";
import { StanzaError, badRequest, forbidden, itemNotFound } from "../src/core/stanza-error.js";
import type { RoomRequest } from "../src/core/room/api.js";
import { buildForm } from "../src/xmpp/forms.js";
import { bareString, jidToString, parseBareJid } from "../src/xmpp/jid.js";
import { NS } from "../src/xmpp/stanza.js";
import { destroyRoom } from "./owner.js";
import { AdminError, runAdminCommand, type AdminCommand, type AdminResult, type OccupantRow, type RoomDetails } from "./admin-commands.js";
import type { RoomEngine } from "../src/core/room/engine.js";
import { parseFormBoolean, type FormField } from "../src/xmpp/forms.js";
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

// ---------------------------------------------------------------------------------------------
// The operator's commands

const ADMIN_NODE = "urn:dmuc-gateway:admin:";
const ROOM_FIELD: FormField = { var: "room", type: "jid-single", label: "Room", required: true, values: [] };

interface OperatorCommand {
  node: string;
  name: string;
  /** The form to fill in; none: the command runs at once. */
  fields: FormField[];
  command(values: Map<string, string[]>): AdminCommand;
}

const one = (values: Map<string, string[]>, name: string): string | undefined => {
  const value = values.get(name)?.[0]?.trim();
  return value === undefined || value === "" ? undefined : value;
};
const required = (values: Map<string, string[]>, name: string): string => {
  const value = one(values, name);
  if (value === undefined) throw badRequest(`The field ${name} is required`);
  return value;
};
const flag = (values: Map<string, string[]>, name: string): boolean | undefined => parseFormBoolean(one(values, name));

const OPERATOR_COMMANDS: OperatorCommand[] = [
  { node: `${ADMIN_NODE}list-rooms`, name: "List rooms", fields: [], command: () => ({ op: "rooms.list" }) },
  { node: `${ADMIN_NODE}room-info`, name: "Room information", fields: [ROOM_FIELD], command: (v) => ({ op: "rooms.show", room: required(v, "room") }) },
  { node: `${ADMIN_NODE}occupants`, name: "List a room's occupants", fields: [ROOM_FIELD], command: (v) => ({ op: "occupants", room: required(v, "room") }) },
  {
    node: `${ADMIN_NODE}create-room`,
    name: "Create a room",
    fields: [
      ROOM_FIELD,
      { var: "name", type: "text-single", label: "Name", values: [] },
      { var: "description", type: "text-single", label: "Description", values: [] },
      { var: "persistent", type: "boolean", label: "Persistent", values: ["1"] },
      { var: "public", type: "boolean", label: "Listed in the directory", values: ["1"] },
      { var: "membersonly", type: "boolean", label: "Members only", values: ["0"] },
      { var: "password", type: "text-private", label: "Password", values: [] },
      { var: "owners", type: "jid-multi", label: "Owners", values: [] },
    ],
    command: (v) => {
      const name = one(v, "name");
      const description = one(v, "description");
      const password = one(v, "password");
      const persistent = flag(v, "persistent");
      const isPublic = flag(v, "public");
      const membersOnly = flag(v, "membersonly");
      return {
        op: "rooms.create",
        room: required(v, "room"),
        owners: (v.get("owners") ?? []).map((o) => o.trim()).filter((o) => o !== ""),
        ...(name !== undefined && { name }),
        ...(description !== undefined && { description }),
        ...(password !== undefined && { password }),
        ...(persistent !== undefined && { persistent }),
        ...(isPublic !== undefined && { public: isPublic }),
        ...(membersOnly !== undefined && { membersOnly }),
      };
    },
  },
  {
    node: `${ADMIN_NODE}destroy-room`,
    name: "Destroy a room",
    fields: [
      ROOM_FIELD,
      { var: "reason", type: "text-single", label: "Reason given to the occupants", values: [] },
      { var: "venue", type: "jid-single", label: "Alternate room", values: [] },
    ],
    command: (v) => {
      const reason = one(v, "reason");
      const venue = one(v, "venue");
      return { op: "rooms.destroy", room: required(v, "room"), ...(reason !== undefined && { reason }), ...(venue !== undefined && { venue }) };
    },
  },
];

/** A XEP-0004 result with a table (§3.4 reported/item). */
function tableForm(title: string, columns: [string, string][], rows: string[][]): Element {
  return xml(
    "x",
    { xmlns: NS.DATA_FORMS, type: "result" },
    xml("title", {}, title),
    xml("reported", {}, ...columns.map(([name, label]) => xml("field", { var: name, label }))),
    ...rows.map((row) => xml("item", {}, ...row.map((value, i) => xml("field", { var: columns[i]![0] }, xml("value", {}, value))))),
  );
}

const yes = (b: boolean) => (b ? "1" : "0");

function occupantTable(room: string, occupants: OccupantRow[]): Element {
  return tableForm(
    `Occupants of ${room}`,
    [["nick", "Nickname"], ["role", "Role"], ["affiliation", "Affiliation"], ["jid", "Real JIDs"]],
    occupants.map((o) => [o.nick, o.role, o.affiliation, o.sessions.join(" ")]),
  );
}

function roomForm(room: RoomDetails): Element {
  const text = (v: string, label: string, value: string | null): FormField => ({ var: v, type: "text-single", label, values: value === null ? [] : [value] });
  const bool = (v: string, label: string, value: boolean): FormField => ({ var: v, type: "boolean", label, values: [yes(value)] });
  return buildForm({
    type: "result",
    title: room.jid,
    fields: [
      { var: "room", type: "jid-single", label: "Room", values: [room.jid] },
      text("name", "Name", room.name),
      text("description", "Description", room.description),
      text("subject", "Subject", room.subject),
      text("occupants", "Occupants", String(room.occupants)),
      bool("persistent", "Persistent", room.persistent),
      bool("public", "Listed in the directory", room.public),
      bool("membersonly", "Members only", room.membersOnly),
      bool("passwordprotected", "Password protected", room.passwordProtected),
      text("lastactivity", "Last activity", room.lastActivity),
      { var: "owners", type: "jid-multi", label: "Owners", values: room.affiliations.filter((a) => a.affiliation === "owner").map((a) => a.jid) },
      { var: "occupantlist", type: "text-multi", label: "Occupants", values: room.occupantList.map((o) => `${o.nick} (${o.role}, ${o.affiliation}) ${o.sessions.join(" ")}`) },
    ],
  });
}

function resultPayload(result: AdminResult): Element[] {
  switch (result.op) {
    case "rooms.list":
      return [
        tableForm(
          "Rooms",
          [["room", "Room"], ["name", "Name"], ["occupants", "Occupants"], ["persistent", "Persistent"], ["public", "Public"], ["lastactivity", "Last activity"]],
          result.rooms.map((r) => [r.jid, r.name, String(r.occupants), yes(r.persistent), yes(r.public), r.lastActivity ?? ""]),
        ),
      ];
    case "rooms.show":
      return [roomForm(result.room)];
    case "rooms.create":
      return [xml("note", { type: "info" }, `The room ${result.room.jid} was created.`), roomForm(result.room)];
    case "rooms.destroy":
      return [xml("note", { type: "info" }, `The room ${result.room} was destroyed; ${result.occupantsTold} occupants were told.`)];
    case "occupants":
      return [occupantTable(result.room, result.occupants)];
  }
}

function runOperatorCommand(rooms: RoomEngine, request: ServiceRequest, spec: OperatorCommand, command: Element, sessionid: string): Element {
  const action = command.attrs.action ?? "execute";
  if (action === "cancel") return commandReply(spec.node, sessionid, "canceled");
  if (action !== "execute" && action !== "complete") throw new StanzaError("modify", "bad-request", "Unsupported action");
  const form = command.getChild("x", NS.DATA_FORMS);
  if (form?.attrs.type === "cancel") return commandReply(spec.node, sessionid, "canceled");
  if (!form && spec.fields.length > 0) {
    return commandReply(
      spec.node,
      sessionid,
      "executing",
      xml("actions", { execute: "complete" }, xml("complete")),
      buildForm({ type: "form", title: spec.name, fields: spec.fields }),
    );
  }
  const values = new Map((form?.getChildren("field") ?? []).map((f) => [f.attrs.var ?? "", f.getChildren("value").map((v) => v.getText())]));
  let result: AdminResult;
  try {
    result = runAdminCommand(rooms, request, spec.command(values));
  } catch (err) {
    if (!(err instanceof AdminError)) throw err;
    throw err.kind === "not-found" ? itemNotFound(err.message) : err.kind === "conflict" ? new StanzaError("cancel", "conflict", err.message) : badRequest(err.message);
  }
  return commandReply(spec.node, sessionid, "completed", ...resultPayload(result));
}

export const serviceAdminPlugin: Plugin = {
  name: "service-admin",
  register({ hooks, serviceIq, rooms }) {
    hooks.on("service/disco-info", ({ info }) => {
      info.features.add(NS.COMMANDS);
    });
    // XEP-0050 §2.2: the command list; only administrators see commands they could run.
    hooks.on("service/disco-items", ({ request, node }) => {
      if (node !== NS.COMMANDS) return undefined;
      if (!isAdmin(request)) return [];
      return [
        { jid: request.settings.domain, node: DESTROY_NODE, name: "Destroy rooms" },
        ...OPERATOR_COMMANDS.map((c) => ({ jid: request.settings.domain, node: c.node, name: c.name })),
      ];
    });

    serviceIq.set(NS.COMMANDS, "command", (request, command) => {
      const operator = OPERATOR_COMMANDS.find((c) => c.node === command.attrs.node);
      if (command.attrs.node !== DESTROY_NODE && !operator) throw itemNotFound("No such command");
      if (!isAdmin(request)) throw forbidden("Only service administrators may run this command");
      // The form carries everything, so the commands keep no session state: any sessionid is echoed.
      const sessionid = command.attrs.sessionid ?? request.context.newId();
      if (operator) return runOperatorCommand(rooms, request, operator, command, sessionid);
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
