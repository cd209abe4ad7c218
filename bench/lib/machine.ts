// The machine a benchmark ran on, printed with every run (figures mean nothing without it).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";

function prosodyVersion(): string {
  try {
    const out = execFileSync("dpkg-query", ["-W", "-f=${Version}", "prosody"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    if (out.trim()) return out.trim();
  } catch {
    // not a Debian package
  }
  try {
    const out = execFileSync("prosodyctl", ["about"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 10_000 });
    return out.split("\n")[0]?.trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

function distro(): string {
  try {
    const text = readFileSync("/etc/os-release", "utf8");
    return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(text)?.[1] ?? "";
  } catch {
    return "";
  }
}

export function machineLines(): string[] {
  const cpus = os.cpus();
  return [
    `date: ${new Date().toISOString()}`,
    `os: ${os.type()} ${os.release()} ${os.arch()}${distro() ? ` (${distro()})` : ""}`,
    `cpus: ${cpus.length} x ${cpus[0]?.model?.trim() ?? "unknown"}`,
    `memory: ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    `load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`,
    `node: ${process.version}`,
    `prosody: ${prosodyVersion()}`,
  ];
}
