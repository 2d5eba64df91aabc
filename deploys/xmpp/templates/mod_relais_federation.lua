-- mod_relais_federation (Relais, deploys/xmpp): server-to-server federation only with the
-- domains of the allow-list (`relais_federation_allow`, server-wide, re-read on reload).
--
-- Debian's prosody-modules ships mod_host_guard for this, but that version (2011) does not
-- run on Prosody 0.12 (it uses the removed global `configmanager`), hence this module.
-- Refused: outgoing stanzas to other domains (policy-violation error to the sender),
-- incoming streams that announce or authenticate another domain (stream closed).
module:set_global();

local st = require "util.stanza";

local allowed;
local function load_list()
	allowed = module:get_option_set("relais_federation_allow", {});
end
load_list();

local function refuse(session, remote)
	module:log("warn", "Refused federation with %s (not in the allow-list)", tostring(remote));
	session:close({ condition = "policy-violation",
		text = "This server only federates with the domains its operator allows" });
end

local function close_disallowed()
	for session in pairs(prosody.incoming_s2s) do
		if session.from_host and not allowed:contains(session.from_host) then refuse(session, session.from_host); end
	end
	for _, host in pairs(prosody.hosts) do
		for remote, session in pairs(host.s2sout or {}) do
			if not allowed:contains(remote) then refuse(session, remote); end
		end
	end
end

module:hook("config-reloaded", function ()
	load_list();
	close_disallowed();
end);

function module.add_host(module)
	-- Outgoing: a local user or room sends to a remote domain.
	module:hook("route/remote", function (event)
		if allowed:contains(event.to_host) then return; end
		local stanza = event.stanza;
		module:log("info", "Not routing to %s: not in the federation allow-list", event.to_host);
		if stanza.attr.type ~= "error" and stanza.attr.type ~= "result" then
			module:send(st.error_reply(stanza, "cancel", "policy-violation",
				"Federation with this domain is not allowed here"), prosody.hosts[event.from_host]);
		end
		return true;
	end, 1000);
	-- Incoming: the remote announces itself in its stream header...
	module:hook("s2s-stream-features", function (event)
		local session = event.origin;
		if session.from_host and not allowed:contains(session.from_host) then
			refuse(session, session.from_host);
			return true;
		end
	end, 1000);
	-- ... and whatever it announced, it authenticates as one domain (certificate or dialback).
	module:hook("s2s-authenticated", function (event)
		if not allowed:contains(event.host) then
			refuse(event.session, event.host);
			return false;
		end
	end, 1000);
end
