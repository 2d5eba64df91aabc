-- Managed by Relais (deploys/xmpp): what hundreds of communes in one Prosody can share.
--
-- 1. Module code. Prosody 0.12 reads and compiles a module's file again for every host that
--    loads it (and every library a module loads with module:require, e.g. the twenty files of
--    mod_muc), so the same bytecode, constants and debug information are kept once per commune.
--    The two compile steps of Prosody's plugin loader (modulemanager.loader:load_code and
--    load_code_ext) are replaced: the source, read from disk as before, is compiled once as
--    `local _ENV = ...; <source>` (same line numbers) and each host runs that one function with
--    its own environment. Hosts keep their own closures, tables and state: only the function
--    prototypes are shared. A file whose text changed (reload after an upgrade) is compiled
--    again; a file that cannot be compiled this way is loaded as Prosody does.
-- 2. TLS contexts. mod_tls creates three OpenSSL contexts per host (c2s, s2s in, s2s out; about
--    23 KiB each), and a commune's VirtualHost and its group-chat component use the same
--    certificate: certmanager.create_context returns the context already made for an identical
--    configuration (same options, same certificate and key files: path and content) instead of a
--    new one. A reload (adding a commune) then makes contexts only for the new commune instead of
--    all of them again (mod_tls asks again for every host on each reload), and a renewed
--    certificate (new content) still gets a new context on reload, as without this module. A
--    change of owner, mode or times alone is not a new certificate: before, keyed by inode, size
--    and times, a `chown -R` of the certificates made the next reload build every context again.
--    Contexts are held weakly: unused ones are freed.
-- 3. Memory after a reload. A reload runs mod_tls again for every host and leaves garbage that
--    the incremental collector (threshold 120 %) lets grow before collecting it; the allocator
--    then keeps that high-water mark for good (~18 % of PSS measured after the first reload). A
--    full collection before the reload (its allocations then reuse the space the garbage held),
--    once every config-reloaded handler has run, and again 5 s later (once the hosts of new
--    communes are activated) keeps the heap at what is live.
--
-- Global module, listed first in the server-wide modules_enabled. Written against Prosody 0.12's
-- plugin loader and certmanager; on another version it logs a warning and changes nothing.

module:set_global();

local modulemanager = require "core.modulemanager";
local certmanager = require "core.certmanager";
local config = require "core.configmanager";
local lfs = require "lfs";
local sha256 = require "util.hashes".sha256;
local hex = require "util.hex".to;
local loader = modulemanager.loader;
local load, type, pairs, ipairs, select, tostring = load, type, pairs, ipairs, select, tostring;
local io_open = io.open;
local t_concat, t_sort, s_format = table.concat, table.sort, string.format;

if not (prosody.version or ""):match("^0%.12%.") or type(loader) ~= "table" or rawget(loader, "load_code")
	or type(certmanager.create_context) ~= "function" then
	module:log("warn", "Prosody %s: nothing shared (written for 0.12's plugin loader and certmanager)",
		tostring(prosody.version));
	return;
end

-- 1. Module code ------------------------------------------------------------------------------

local compiled = {}; -- path -> { source = text, chunk = function (env) }
local shared_files = 0;

local function shared_chunk(content, path, env)
	local entry = compiled[path];
	if not (entry and entry.source == content) then
		local chunk = load("local _ENV = ...; " .. content, "@" .. path, "t");
		if not chunk then return nil; end -- e.g. too many locals: Prosody's own loader takes over
		if not entry then shared_files = shared_files + 1; end
		entry = { source = content, chunk = chunk };
		compiled[path] = entry;
	end
	local chunk = entry.chunk;
	return function () return chunk(env); end;
end

local prosody_load_code, prosody_load_code_ext = loader.load_code, loader.load_code_ext;

function loader.load_code(self, plugin, resource, env)
	if env == nil then return prosody_load_code(self, plugin, resource, env); end
	local content, path, metadata = self:load_resource(plugin, resource);
	if not content then return content, path; end
	local f = shared_chunk(content, path, env);
	if not f then return prosody_load_code(self, plugin, resource, env); end
	return f, path, metadata;
end

function loader.load_code_ext(self, plugin, resource, extension, env)
	if env == nil then return prosody_load_code_ext(self, plugin, resource, extension, env); end
	local content, path, metadata = self:load_resource(plugin, resource .. "." .. extension);
	if not content and extension == "lib.lua" then
		content, path, metadata = self:load_resource(plugin, resource .. ".lua");
	end
	if not content then
		content, path, metadata = self:load_resource(resource, resource .. "." .. extension);
		if not content then return content, path; end
	end
	local f = shared_chunk(content, path, env);
	if not f then return prosody_load_code_ext(self, plugin, resource, extension, env); end
	return f, path, metadata;
end

-- 2. TLS contexts -----------------------------------------------------------------------------

-- A canonical text for a configuration table; nil when it holds something else than plain
-- data (a function, e.g. a password callback): such a context is never shared.
local function serialize(value, out)
	local kind = type(value);
	if kind == "string" then
		out[#out + 1] = s_format("%q", value);
	elseif kind == "number" or kind == "boolean" or kind == "nil" then
		out[#out + 1] = tostring(value);
	elseif kind == "table" then
		local keys = {};
		for k in pairs(value) do
			local k_kind = type(k);
			if k_kind ~= "string" and k_kind ~= "number" then return nil; end
			keys[#keys + 1] = k;
		end
		t_sort(keys, function (a, b) return type(a) .. tostring(a) < type(b) .. tostring(b); end);
		out[#out + 1] = "{";
		for _, k in ipairs(keys) do
			out[#out + 1] = type(k) .. ":" .. tostring(k) .. "=";
			if not serialize(value[k], out) then return nil; end
			out[#out + 1] = ";";
		end
		out[#out + 1] = "}";
	else
		return nil;
	end
	return true;
end

local contexts = setmetatable({}, { __mode = "v" }); -- configuration text -> context
local configs = setmetatable({}, { __mode = "k" }); -- context -> its final configuration
local shared_contexts = 0;
local prosody_create_context = certmanager.create_context;

-- The files a context is made from, by content: a renewed certificate (new content) is a new
-- context, while a change of owner, mode or times alone (chown -R, a restore) is not. The digest
-- of a file is kept as long as its path, inode, size and times are the same, so a reload reads
-- again only the files that changed.
local digests = {}; -- path -> { stat = "dev:ino:size:mtime:ctime", digest = hex }

local function file_identity(path)
	if type(path) ~= "string" or path:sub(1, 1) ~= "/" then return nil; end
	local a = lfs.attributes(path);
	if not a or a.mode ~= "file" then return nil; end
	local stat = s_format("%s:%s:%s:%s:%s", tostring(a.dev), tostring(a.ino), tostring(a.size),
		tostring(a.modification), tostring(a.change));
	local known = digests[path];
	if not (known and known.stat == stat) then
		local f = io_open(path, "rb");
		if not f then return nil; end
		local content = f:read("*a");
		f:close();
		if not content then return nil; end
		known = { stat = stat, digest = hex(sha256(content)) };
		digests[path] = known;
	end
	return path .. "@" .. known.digest;
end

local function create_context(host, mode, ...)
	-- What certmanager applies besides the arguments: the server-wide ssl option and TLS profile.
	local out = { tostring(mode), "|" };
	if not serialize(config.get("*", "ssl"), out) then return prosody_create_context(host, mode, ...); end
	out[#out + 1] = "|" .. tostring(config.get("*", "tls_profile")) .. "|";
	local certificate, key;
	for i = 1, select("#", ...) do
		local part = select(i, ...);
		if type(part) == "table" then
			certificate, key = part.certificate or certificate, part.key or key;
		end
		if not serialize(part, out) then return prosody_create_context(host, mode, ...); end
		out[#out + 1] = "|";
	end
	-- Only contexts from explicit certificate and key files are shared (certmanager otherwise
	-- looks one up by host name).
	local certificate_id, key_id = file_identity(certificate), file_identity(key);
	if not (certificate_id and key_id) then return prosody_create_context(host, mode, ...); end
	out[#out + 1] = certificate_id .. "|" .. key_id;
	local id = t_concat(out);
	local ctx = contexts[id];
	if ctx ~= nil and configs[ctx] then
		shared_contexts = shared_contexts + 1;
		return ctx, nil, configs[ctx];
	end
	local made, err, cfg = prosody_create_context(host, mode, ...);
	if made then
		contexts[id], configs[made] = made, cfg;
	end
	return made, err, cfg;
end

certmanager.create_context = create_context;

-- 3. Memory after a reload --------------------------------------------------------------------

local function collect(when)
	local before = collectgarbage("count");
	collectgarbage("collect");
	collectgarbage("collect"); -- objects with finalizers (files, contexts) go on the second pass
	module:log("debug", "full collection %s: Lua heap %.0f -> %.0f KiB", when, before, collectgarbage("count"));
end

module:hook_global("reloading-config", function ()
	collect("before the reload"); -- the reload's allocations then reuse what the garbage held
end, -1000);

module:hook_global("config-reloaded", function ()
	collect("after the reload");
	module:add_timer(5, function () collect("after the hosts' activation"); end);
end, -1000); -- after every other handler (mod_tls of each host, certmanager, logging)

module:log("info", "module code compiled once and TLS contexts shared by the hosts");

function module.unload()
	loader.load_code, loader.load_code_ext = nil, nil; -- back to the loader's own methods
	certmanager.create_context = prosody_create_context;
	module:log("info", "sharing stopped (%d module files compiled once, %d TLS contexts reused)",
		shared_files, shared_contexts);
end
