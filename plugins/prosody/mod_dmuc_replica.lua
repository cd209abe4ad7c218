-- mod_dmuc_replica: the users' server side of DMUC2 (XEP-0282) for dmuc-gateway.
--
-- Load it on the VirtualHost of the users a DMUC2 replica serves (e.g. oulubox.test); the replica is an
-- external component of that host (e.g. dmuc.oulubox.test). The wire protocol is in docs/PROTOCOL.md,
-- section "What users send". The replica asks this module, with IQs addressed to the VirtualHost:
--
--   <divert xmlns='urn:xmpp:tmp:dmuc:0' room='ROOM'/>      (set)  hand what local users send to ROOM
--                                                                  (ROOM or ROOM/nick) to the replica
--   <undivert xmlns='urn:xmpp:tmp:dmuc:0' room='ROOM'/>    (set)  stop that
--   <directed xmlns='urn:xmpp:tmp:dmuc:0' jid='FULL' room='ROOM'/> (get)
--        answered with <directed present='true|false'/>: has session FULL sent available directed
--        presence to ROOM (some ROOM/nick) that it has not withdrawn? Without 'jid': has any session
--        of this host? (the replica accepts to replicate ROOM only then)
--   <relay xmlns='urn:xmpp:tmp:dmuc:0'>STANZA</relay>     (set)  send STANZA on (over s2s) as if the
--        user named by its 'from' had sent it; it is not diverted back to the replica.
--   <divert room='ROOM' acks='true'/>: the replica acknowledges what it is handed. Each diverted stanza
--        then carries <diverted xmlns='urn:xmpp:tmp:dmuc:0' stream='S' seq='N'/> (numbered per component
--        connection), and the replica answers, cumulatively, with a message to this host:
--        <message><taken xmlns='urn:xmpp:tmp:dmuc:0' stream='S' seq='N'/></message>. The module keeps
--        each diverted stanza until it is taken; when the component's connection ends (or nothing is
--        taken for dmuc_divert_ack_timeout seconds) the stanzas not taken are sent on over s2s as the
--        users' own, so nothing written into a dying component connection is lost.
--
-- Options (on the VirtualHost, or global):
--   dmuc_replica = "dmuc.oulubox.test"
--        The replica component. Requests from any other entity are refused (forbidden). Without it, the
--        first component of this host (a Component named *.<host>) that sends a well-formed request
--        becomes the replica until Prosody restarts or the module reloads.
--   dmuc_divert_ack_timeout = 30
--        Seconds a diverted stanza may wait for the replica's acknowledgement before it is sent on over
--        s2s in the user's name (a replica that is connected but stuck).
--   dmuc_relay_grace = 60
--        Seconds after a session ended during which a relayed unavailable presence from its full JID is
--        still accepted (a client that sends unavailable and disconnects at once must still leave the
--        room; its unavailable presence may be relayed after its session is gone). 0 disables.
--
-- The component needs `validate_from_addresses = false` (it delivers room stanzas with the room's from).
--
-- Decisions (see plugins/prosody/README.md):
-- * Who may ask: only a component session (origin.type == "component") whose domain is the replica, and
--   whose 'from' is in that domain. The 'from' alone proves nothing: the replica may send any 'from'.
-- * Diversions belong to the replica's component connection: when that connection ends they are all
--   dropped (and users' stanzas go over s2s again), so the replica must send <divert/> again after it
--   reconnects. This is checked lazily (session.destroyed) when a stanza is routed.
-- * Stanzas Prosody sends on behalf of a session that has already ended (the unavailable presence to
--   every directed JID when a client disconnects) are not diverted: they go straight over s2s, since a
--   relay of them would be refused (no live session).
-- * session.directed is NOT updated on relay: a diverted stanza has already been through the
--   pre-presence/* events on the user's host (mod_presence records directed presence there, before the
--   stanza is routed and diverted), so the directed check sees what the user sent, diverted or not.
--   A relay is routed with core_route_stanza, which fires no pre-* events (no second carbon copy or
--   directed-presence bookkeeping for the same stanza).
-- * A relay may only go to a remote domain (never to a local user or component).

local st = require "util.stanza";
local jid_lib = require "util.jid";
local new_id = require "util.id";

local jid_split, jid_prep, jid_bare, jid_host = jid_lib.split, jid_lib.prep, jid_lib.bare, jid_lib.host;
local jid_prepped_split = jid_lib.prepped_split;
local hosts = prosody.hosts;
local full_sessions, bare_sessions = prosody.full_sessions, prosody.bare_sessions;
local core_route_stanza = prosody.core_route_stanza;
local os_time, next, pairs, setmetatable = os.time, next, pairs, setmetatable;

local xmlns_dmuc = "urn:xmpp:tmp:dmuc:0";
local xmlns_sid = "urn:xmpp:sid:0";
local host = module.host;

local pinned = module:get_option_string("dmuc_replica");
local relay_grace = module:get_option_number("dmuc_relay_grace", 60);
local ack_timeout = module:get_option_number("dmuc_divert_ack_timeout", 30);

if pinned then
	local prepped = jid_prep(pinned);
	if not prepped or prepped:find("[@/]") then
		module:log("error", "dmuc_replica = %q is not a domain; every request will be refused", pinned);
		prepped = nil;
	end
	pinned = prepped or false; -- false: misconfigured, nobody is the replica
end

-- The replica's domain: pinned, or claimed by the first component that asks.
local replica = pinned or nil;
-- Diverted rooms (bare JIDs) and the component session that diverted them.
local diverted = {};
local divert_session = nil;
-- Stanzas this module is relaying right now: route/remote lets them through.
local relaying = setmetatable({}, { __mode = "k" });
-- Whether the replica's connection asked to acknowledge what it is handed (<divert acks='true'/>),
-- and what it has not acknowledged yet: { stream = name, next = number, items = { [seq] = { stanza, at } } }.
local acking = false;
local outbox = nil;
local timer_running = false;
-- While the replica is down: the rooms it had diverted, and the room messages (by stanza-id) each local
-- session got straight from those rooms meanwhile (the primary serves a down replica's users directly),
-- so that the restarted replica's catch-up does not give them a second copy: full JID -> { [id] = time }.
local down_rooms = nil;
local got_directly = {};
local GOT_DIRECTLY_TTL = 600;
-- Full JIDs whose session ended recently -> os.time() of the end.
local recently_gone = {};
local last_prune = os_time();

local stanza_kinds = { message = true, presence = true, iq = true };
local iq_types = { get = true, set = true, result = true, error = true };
-- Namespaces the relayed stanza may come in: inherited from <relay/>, or the stream namespaces.
local stanza_namespaces = {
	[xmlns_dmuc] = true,
	["jabber:client"] = true,
	["jabber:server"] = true,
	["jabber:component:accept"] = true,
};

local function is_own_component(domain)
	local h = hosts[domain];
	return h ~= nil and h.type == "component" and domain:sub(-(#host + 1)) == "." .. host;
end

-- A room address: a bare JID with a local part (prepped), or nil.
local function room_jid(value)
	if not value then return nil; end
	local node, domain, resource = jid_prepped_split(value);
	if not node or resource then return nil; end
	return node .. "@" .. domain;
end

local function refuse(event, error_type, condition, reason)
	local stanza = event.stanza;
	local request = stanza.tags[1];
	module:log("info", "dmuc.refused %s %s from %s (origin %s): %s", stanza.attr.type,
		request and request.name or "?", stanza.attr.from or "?", event.origin.host or event.origin.type or "?", reason);
	event.origin.send(st.error_reply(stanza, error_type, condition, reason));
	return true;
end

-- Checks that a request comes from the replica (or from a component that may become it).
-- Returns the component's domain, or nil and the reason.
local function requester(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.type ~= "component" then
		return nil, "not sent by a component of this server";
	end
	local domain = origin.host;
	if jid_host(stanza.attr.from) ~= domain then
		return nil, "'from' is not in the component's domain " .. tostring(domain);
	end
	if pinned ~= nil then
		if not pinned then return nil, "dmuc_replica is misconfigured"; end
		if domain ~= pinned then return nil, domain .. " is not the replica (dmuc_replica = " .. pinned .. ")"; end
	elseif not is_own_component(domain) then
		return nil, domain .. " is not a component of " .. host;
	elseif replica and domain ~= replica then
		return nil, domain .. " is not the replica (" .. replica .. " is)";
	end
	return domain;
end

-- A well-formed request from `domain`: it becomes the replica if there is none yet.
local function claim(domain)
	if not replica then
		replica = domain;
		module:log("info", "dmuc.replica %s is now the replica of %s", domain, host);
	end
end

-- Sends a diverted stanza the replica did not take on over s2s, as the user's own: from the user's
-- session while it lasts (the same path as had it never been diverted), else from the host.
local function send_on(stanza)
	local origin = full_sessions[stanza.attr.from] or hosts[host];
	relaying[stanza] = true;
	core_route_stanza(origin, stanza);
	relaying[stanza] = nil;
end

-- Sends on, in order, the diverted stanzas not taken: all of them, or those handed over before `before`.
local function send_on_unacked(reason, before)
	if not outbox then return; end
	local seqs = {};
	for seq, item in pairs(outbox.items) do
		if not before or item.at < before then seqs[#seqs + 1] = seq; end
	end
	if #seqs == 0 then return; end
	table.sort(seqs);
	module:log("warn", "dmuc.divert_resent %d stanza(s) the replica did not take go over s2s: %s", #seqs, reason);
	for _, seq in ipairs(seqs) do
		local item = outbox.items[seq];
		outbox.items[seq] = nil;
		send_on(item.stanza);
	end
end

-- The diverted rooms, or nil when the replica's connection that diverted them has ended (what it did
-- not take is then sent on over s2s).
local function live_diversions()
	if not divert_session then return nil; end
	if divert_session.destroyed or divert_session.type ~= "component" then
		local count = 0;
		for _ in pairs(diverted) do count = count + 1; end
		module:log("info", "dmuc.undivert the replica's connection ended: dropping %d diversion(s)", count);
		down_rooms = diverted;
		diverted, divert_session = {}, nil;
		send_on_unacked("the replica's connection ended");
		outbox, acking = nil, false;
		return nil;
	end
	return diverted;
end

-- Diversions are bound to the component session that asks for them.
local function bind_session(origin)
	live_diversions();
	if divert_session ~= origin then
		if next(diverted) then
			module:log("info", "dmuc.undivert the replica reconnected: dropping the old connection's diversions");
		end
		diverted, divert_session = {}, origin;
		down_rooms = nil;
		send_on_unacked("the replica reconnected");
		outbox, acking = nil, false;
	end
end

-- Once a second while stanzas wait for the replica: a connection that ended (nothing else may be
-- routed to notice), and stanzas not taken within dmuc_divert_ack_timeout.
local function watch_outbox()
	live_diversions();
	if outbox then send_on_unacked("not taken within " .. ack_timeout .. " s", os_time() - ack_timeout); end
	if outbox and next(outbox.items) then return 1; end
	timer_running = false;
end

-- Keeps a copy of `stanza` until the replica takes it; returns the copy to hand over, numbered.
local function keep(stanza)
	if not outbox then outbox = { stream = new_id.short(), next = 1, items = {} }; end
	local seq = outbox.next;
	outbox.next = seq + 1;
	outbox.items[seq] = { stanza = st.clone(stanza), at = os_time() };
	if not timer_running then
		timer_running = true;
		module:add_timer(1, watch_outbox);
	end
	local handed = st.clone(stanza);
	handed:reset();
	return handed:tag("diverted", { xmlns = xmlns_dmuc, stream = outbox.stream, seq = tostring(seq) }):up();
end

module:hook("iq-set/host/" .. xmlns_dmuc .. ":divert", function(event)
	local domain, why = requester(event);
	if not domain then return refuse(event, "auth", "forbidden", why); end
	local room = room_jid(event.stanza:get_child("divert", xmlns_dmuc).attr.room);
	if not room then return refuse(event, "modify", "bad-request", "'room' must be a bare JID with a local part"); end
	claim(domain);
	if hosts[jid_host(room)] then
		return refuse(event, "cancel", "not-acceptable", room .. " is on this server: nothing to divert");
	end
	bind_session(event.origin);
	if event.stanza:get_child("divert", xmlns_dmuc).attr.acks == "true" then acking = true; end
	if not diverted[room] then
		diverted[room] = true;
		module:log("info", "dmuc.divert local users' stanzas to %s now go to %s", room, domain);
	end
	event.origin.send(st.reply(event.stanza));
	return true;
end);

module:hook("iq-set/host/" .. xmlns_dmuc .. ":undivert", function(event)
	local domain, why = requester(event);
	if not domain then return refuse(event, "auth", "forbidden", why); end
	local room = room_jid(event.stanza:get_child("undivert", xmlns_dmuc).attr.room);
	if not room then return refuse(event, "modify", "bad-request", "'room' must be a bare JID with a local part"); end
	claim(domain);
	local rooms = live_diversions();
	if rooms and divert_session == event.origin and rooms[room] then
		rooms[room] = nil;
		module:log("info", "dmuc.undivert local users' stanzas to %s go over s2s again", room);
	end
	event.origin.send(st.reply(event.stanza));
	return true;
end);

-- Whether `session` has sent available directed presence to `room` (some room/nick) and not withdrawn it.
local function in_room(session, room)
	if not session or not session.directed then return false; end
	for to in pairs(session.directed) do
		if jid_bare(to) == room then return true; end
	end
	return false;
end

module:hook("iq-get/host/" .. xmlns_dmuc .. ":directed", function(event)
	local domain, why = requester(event);
	if not domain then return refuse(event, "auth", "forbidden", why); end
	local query = event.stanza:get_child("directed", xmlns_dmuc);
	local room = room_jid(query.attr.room);
	if not room then return refuse(event, "modify", "bad-request", "'room' must be a bare JID with a local part"); end
	local present = false;
	if query.attr.jid == nil then
		-- Without 'jid': is any session of this host in the room? (A replica accepts a room only then.)
		claim(domain);
		for _, user in pairs(hosts[host].sessions or {}) do
			for _, session in pairs(user.sessions or {}) do
				if in_room(session, room) then present = true; break; end
			end
			if present then break; end
		end
		module:log("debug", "dmuc.directed any -> %s: %s", room, tostring(present));
	else
		local user = jid_prep(query.attr.jid);
		if not user then return refuse(event, "modify", "bad-request", "'jid' must be a full JID and 'room' a bare JID"); end
		local node, user_host, resource = jid_split(user);
		if not node or not resource then return refuse(event, "modify", "bad-request", "'jid' must be a full JID"); end
		claim(domain);
		if user_host ~= host then return refuse(event, "auth", "forbidden", user .. " is not a user of " .. host); end
		present = in_room(full_sessions[user], room);
		module:log("debug", "dmuc.directed %s -> %s: %s", user, room, tostring(present));
	end
	event.origin.send(st.reply(event.stanza):tag("directed", { xmlns = xmlns_dmuc, present = tostring(present) }));
	return true;
end);

-- The relayed stanza arrives with the namespace of <relay/> (or an explicit stream namespace) on itself
-- and on every descendant in that namespace: make those plain stanza content again (no xmlns), as a
-- stanza parsed from a client stream is. Descendants in other namespaces are kept as they are.
local function strip_namespace(el, ns)
	if el.attr.xmlns ~= ns then return; end
	el.attr.xmlns = nil;
	for _, child in ipairs(el.tags) do strip_namespace(child, ns); end
end

local function ended_recently(full_jid)
	local ended = recently_gone[full_jid];
	return ended ~= nil and os_time() - ended <= relay_grace;
end

module:hook("iq-set/host/" .. xmlns_dmuc .. ":relay", function(event)
	local domain, why = requester(event);
	if not domain then return refuse(event, "auth", "forbidden", why); end
	local relay = event.stanza:get_child("relay", xmlns_dmuc);
	local inner = relay.tags[1];
	if #relay.tags ~= 1 or not stanza_kinds[inner.name] or not stanza_namespaces[inner.attr.xmlns or xmlns_dmuc] then
		return refuse(event, "modify", "bad-request", "<relay/> must hold exactly one message, presence or iq");
	end
	local out = st.clone(inner);
	strip_namespace(out, inner.attr.xmlns);
	local from = out.attr.from and jid_prep(out.attr.from);
	local to = out.attr.to and jid_prep(out.attr.to);
	if not from or not to then
		return refuse(event, "modify", "bad-request", "the relayed stanza needs a valid 'from' and 'to'");
	end
	if out.name == "iq" and not (iq_types[out.attr.type] and out.attr.id) then
		return refuse(event, "modify", "bad-request", "the relayed iq needs a 'type' and an 'id'");
	end
	claim(domain);
	local node, from_host, resource = jid_split(from);
	if not node or from_host ~= host then
		return refuse(event, "auth", "forbidden", "relayed 'from' " .. from .. " is not a user of " .. host);
	end
	if hosts[jid_host(to)] then
		return refuse(event, "auth", "forbidden", "relayed 'to' " .. to .. " is on this server, not remote");
	end
	local origin;
	if resource then
		origin = full_sessions[from];
		if not origin and out.name == "presence" and out.attr.type == "unavailable" and ended_recently(from) then
			origin = hosts[host]; -- the session has just ended: it may still say it has left
		end
	else
		local user = bare_sessions[from];
		if user and next(user.sessions) then origin = hosts[host]; end
	end
	if not origin then
		return refuse(event, "auth", "forbidden", "relayed 'from' " .. from .. " has no live session");
	end
	out.attr.from, out.attr.to = from, to;
	module:log("debug", "dmuc.relay %s from %s to %s", out.name, from, to);
	relaying[out] = true;
	core_route_stanza(origin, out);
	relaying[out] = nil;
	event.origin.send(st.reply(event.stanza));
	return true;
end);

-- What a local user's session sends to a diverted room goes to the replica instead of over s2s.
-- Priority 100: above mod_s2s (-1, -10), below policy modules that block remote traffic (mod_firewall,
-- s2s whitelists, 200-500), so that those still see the stanza first.
module:hook("route/remote", function(event)
	local stanza, origin = event.stanza, event.origin;
	if relaying[stanza] then return nil; end
	if not origin or origin.type ~= "c2s" or origin.host ~= host then return nil; end
	local node, to_host, resource = jid_split(stanza.attr.to);
	if not node then return nil; end
	local rooms = live_diversions();
	local room = node .. "@" .. to_host;
	if not rooms or not rooms[room] then return nil; end
	if origin.destroyed or full_sessions[origin.full_jid] ~= origin then
		-- sent on behalf of a session that has ended (e.g. its unavailable presence): not relayable
		module:log("debug", "dmuc.divert not diverting %s from ended session %s", stanza.name, tostring(origin.full_jid));
		return nil;
	end
	local target = hosts[replica];
	if not target then return nil; end
	-- A groupchat message gets an origin-id (XEP-0359) if it has none: the room knows it by that id if
	-- it reaches the room twice (through the replica, and sent on here when not taken in time).
	if stanza.name == "message" and stanza.attr.type == "groupchat" and stanza:get_child("body")
		and not stanza:get_child("origin-id", xmlns_sid) then
		stanza:reset();
		stanza:tag("origin-id", { xmlns = xmlns_sid, id = new_id.medium() }):up();
	end
	-- Only this module numbers what it hands over: a number a user put in its own stanza goes.
	stanza:maptags(function(child)
		if child.name == "diverted" and child.attr.xmlns == xmlns_dmuc then return nil; end
		return child;
	end);
	local handed = acking and keep(stanza) or stanza;
	module:log("debug", "dmuc.divert %s from %s to %s handed to %s", stanza.name, tostring(stanza.attr.from), stanza.attr.to, replica);
	-- The event mod_component handles for stanzas addressed to the component: it writes the stanza
	-- ('to' is still the room) to the component's stream.
	return target.events.fire_event(stanza.name .. (resource and "/full" or "/bare"), { origin = origin, stanza = handed });
end, 100);

-- <taken stream seq/>: the replica has taken every diverted stanza of its connection up to seq.
module:hook("message/host", function(event)
	local taken = event.stanza:get_child("taken", xmlns_dmuc);
	if not taken then return nil; end
	local domain = requester(event);
	if not domain or event.origin ~= divert_session then
		module:log("info", "dmuc.refused taken from %s: not the replica's diverting connection", tostring(event.stanza.attr.from));
		return true;
	end
	local seq = tonumber(taken.attr.seq);
	if not outbox or taken.attr.stream ~= outbox.stream or not seq then return true; end
	for n in pairs(outbox.items) do
		if n <= seq then outbox.items[n] = nil; end
	end
	return true;
end, 10);

-- The room's stanza-id of a groupchat message from `room` (a bare JID), or nil.
local function room_stanza_id(stanza, room)
	for sid in stanza:childtags("stanza-id", xmlns_sid) do
		if sid.attr.by == room then return sid.attr.id; end
	end
	return nil;
end

-- Room messages to a local session: recorded while they come straight from a room whose replica is
-- down; from the restarted replica, a copy of one so recorded is not delivered again.
module:hook("message/full", function(event)
	local stanza, origin = event.stanza, event.origin;
	if stanza.attr.type ~= "groupchat" then return nil; end
	local to, room = stanza.attr.to, jid_bare(stanza.attr.from);
	local id = room and room_stanza_id(stanza, room);
	if not id or not to then return nil; end
	live_diversions(); -- notices a replica connection that has ended (down_rooms)
	local now = os_time();
	if origin.type == "component" and origin.host == replica then
		local got = got_directly[to];
		if got and got[id] then
			got[id] = nil;
			module:log("debug", "dmuc.catchup_dropped %s already got %s from %s directly", to, id, room);
			return true;
		end
	elseif down_rooms and down_rooms[room] and origin.type == "s2sin" then
		local got = got_directly[to] or {};
		got_directly[to] = got;
		got[id] = now;
		for old, at in pairs(got) do
			if now - at > GOT_DIRECTLY_TTL then got[old] = nil; end
		end
	end
	return nil;
end, 100);

module:hook("resource-unbind", function(event)
	local session = event.session;
	if session.full_jid then got_directly[session.full_jid] = nil; end
	if relay_grace <= 0 or not session.full_jid then return; end
	local now = os_time();
	if now - last_prune > relay_grace then
		for full_jid, ended in pairs(recently_gone) do
			if now - ended > relay_grace then recently_gone[full_jid] = nil; end
		end
		last_prune = now;
	end
	recently_gone[session.full_jid] = now;
end);

-- A module reload (admin shell) keeps the claimed replica and the diversions of its live connection.
function module.save()
	return { replica = replica, diverted = diverted, divert_session = divert_session, recently_gone = recently_gone, acking = acking, outbox = outbox,
		down_rooms = down_rooms, got_directly = got_directly };
end

function module.restore(saved)
	if pinned == nil and saved.replica and is_own_component(saved.replica) then replica = saved.replica; end
	local session = saved.divert_session;
	if replica and session and session.host == replica and not session.destroyed then
		diverted, divert_session = saved.diverted or {}, session;
		acking, outbox = saved.acking or false, saved.outbox;
		if outbox and next(outbox.items) then
			timer_running = true;
			module:add_timer(1, watch_outbox);
		end
	end
	recently_gone = saved.recently_gone or {};
	down_rooms, got_directly = saved.down_rooms, saved.got_directly or {};
end

module:log("info", "dmuc.loaded replica: %s", pinned and pinned
	or (pinned == false and "none (dmuc_replica is misconfigured)") or "the first component of " .. host .. " that asks");

module:hook("resource-bind", function(event)
	local session = event.session;
	if session.full_jid then recently_gone[session.full_jid] = nil; end
end);
