-- mod_dmuc_multicast: multicast through the server for dmuc-gateway (XEP-0033, issue 14).
--
-- Load it on the VirtualHost whose users the gateway (an external component of this server) serves.
-- The gateway sends one stanza addressed to the VirtualHost with an XEP-0033 address list:
--
--   <message from='room@muc.example.org/nick' to='example.org' type='groupchat'>
--     <body>...</body>
--     <addresses xmlns='http://jabber.org/protocol/address'>
--       <address type='to' jid='alice@example.org/phone'/>
--       <address type='to' jid='bob@example.org/laptop'/>
--     </addresses>
--   </message>
--
-- and this module delivers one copy to each address, without the <addresses/> element and with 'to'
-- set to that address, exactly as if the component had sent the copies one by one (each copy is
-- posted with the component's session as its origin, so every module sees what it would have seen).
-- The server's CPU per recipient is then a 'to' and a post, as for mod_muc, instead of parsing, checking and
-- routing one stanza per recipient from the component stream.
--
-- Options (on the VirtualHost, or global):
--   dmuc_multicast_component = "muc.example.org"
--        The only component that may multicast. Required: without it the feature is not offered and
--        every multicast is refused.
--   dmuc_multicast_max_recipients = 10000
--        More addresses than this in one stanza are refused (not-acceptable).
--
-- Refusals (the whole stanza is refused, nothing is delivered; errors as ejabberd's mod_multicast):
--   not from the configured component (a c2s user, a remote server, another component): forbidden
--   an address that is not a user of this VirtualHost (remote, a component, the host itself): forbidden
--   no <address/> to deliver, or an address type other than to/cc/bcc with a jid: bad-request
--   an address without a valid jid (uri, node, malformed): jid-malformed
--   too many addresses: not-acceptable
-- A stanza of type 'error' is never answered with an error (RFC 6120 8.3.1); it is dropped.

local st = require "util.stanza";
local jid_lib = require "util.jid";

local jid_prepped_split, jid_prep = jid_lib.prepped_split, jid_lib.prep;
local core_post_stanza = prosody.core_post_stanza;

local xmlns_address = "http://jabber.org/protocol/address";
local host = module.host;

local component = module:get_option_string("dmuc_multicast_component");
local max_recipients = module:get_option_number("dmuc_multicast_max_recipients", 10000);

if component then
	local prepped = jid_prep(component);
	if not prepped or prepped:find("[@/]") then
		module:log("error", "dmuc_multicast_component = %q is not a domain; every multicast will be refused", component);
		prepped = nil;
	end
	component = prepped;
else
	module:log("error", "dmuc_multicast_component is not set; every multicast will be refused");
end

-- Offered only when some component may use it: a gateway that sees the feature starts multicasting.
if component then module:add_feature(xmlns_address); end

-- Address types that ask for delivery (XEP-0033 section 4.6); the others (replyto, replyroom,
-- noreply, ofrom) only inform the recipients and deliver nothing.
local delivery_types = { to = true, cc = true, bcc = true };

local function refuse(event, error_type, condition, text)
	local stanza = event.stanza;
	module:log("debug", "refused multicast %s from %s (origin %s): %s", stanza.name, stanza.attr.from or "?",
		event.origin.host or event.origin.type or "?", text);
	if stanza.attr.type == "error" then return true; end
	event.origin.send(st.error_reply(stanza, error_type, condition, text));
	return true;
end

-- The recipients of an <addresses/>, or nil and the refusal.
local function recipients_of(addresses)
	local list = {};
	for address in addresses:childtags("address", xmlns_address) do
		local address_type = address.attr.type;
		if address.attr.delivered == "true" then
			-- already delivered by an earlier hop: nothing to do
		elseif delivery_types[address_type] then
			local jid = address.attr.jid;
			if not jid or address.attr.uri or address.attr.node then
				return nil, "modify", "jid-malformed", "Only addresses with a 'jid' are supported";
			end
			local node, domain, resource = jid_prepped_split(jid);
			if not domain then
				return nil, "modify", "jid-malformed", "Malformed address: " .. jid;
			end
			if not node or domain ~= host then
				return nil, "cancel", "forbidden", "Packet relay is denied by service policy: only users of " .. host;
			end
			list[#list + 1] = resource and (node .. "@" .. domain .. "/" .. resource) or (node .. "@" .. domain);
			if #list > max_recipients then
				return nil, "modify", "not-acceptable", "Too many receiver fields were specified";
			end
		elseif address_type == nil then
			return nil, "modify", "bad-request", "An address without a type";
		end
	end
	if #list == 0 then
		return nil, "modify", "bad-request", "No address to deliver to";
	end
	return list;
end

local function multicast(event)
	local stanza, origin = event.stanza, event.origin;
	local addresses = stanza:get_child("addresses", xmlns_address);
	if not addresses then return nil; end -- not a multicast: the host's other handlers take it

	if not component or origin.type ~= "component" or origin.host ~= component then
		return refuse(event, "auth", "forbidden", "Access denied by service policy");
	end
	local list, error_type, condition, text = recipients_of(addresses);
	if not list then return refuse(event, error_type, condition, text); end

	-- One stanza without the address list, posted once per recipient with its 'to' changed in between,
	-- exactly as mod_muc routes a broadcast to each occupant session (room:route_to_occupant): modules
	-- that keep a stanza (stream management, archives) already clone what they keep.
	local copy = st.clone(stanza);
	copy:maptags(function(tag)
		if tag.name == "addresses" and tag.attr.xmlns == xmlns_address then return nil; end
		return tag;
	end);
	for i = 1, #list do
		copy.attr.to = list[i];
		core_post_stanza(origin, copy);
	end
	module:log("debug", "multicast %s from %s delivered to %d recipients", stanza.name, stanza.attr.from or "?", #list);
	return true;
end

-- Before mod_message and mod_presence (priority 0), which would take a stanza to the host as its own.
module:hook("message/host", multicast, 10);
module:hook("presence/host", multicast, 10);
