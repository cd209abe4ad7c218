// Prosody's own mod_muc as the peer in federation benchmarks: `Component "muc.<server>.test" "muc"`.

/**
 * Lua for every server's config (plain MUC): the harness's hosts file (read by libunbound) names
 * each server's VirtualHost and gateway component only; muc.<roomServer>.test must resolve too. The
 * snippet finds the hosts file in its own config file, writes a copy with that name added on
 * <roomServer>'s address next to the config, and points `unbound` at it.
 */
export function mucHostsLua(roomServer: string): string {
  return `do
  local config_file = debug.getinfo(1, "S").source:sub(2)
  local text = io.open(config_file):read("*a")
  local hosts_file = assert(text:match('hoststxt = "([^"]+)"'), "no hoststxt in the config")
  local resolv = assert(text:match('resolvconf = "([^"]+)"'), "no resolvconf in the config")
  local hosts = io.open(hosts_file):read("*a")
  local address = assert(hosts:match("([%d%.]+) ${roomServer}%.test"), "no address for ${roomServer}.test")
  local out = config_file .. ".hosts"
  local f = io.open(out, "w")
  f:write(hosts, address, " muc.${roomServer}.test\\n")
  f:close()
  unbound = { hoststxt = out; resolvconf = resolv }
end`;
}

