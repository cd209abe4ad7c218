// Safety net for the servers the tests start: whatever a test forgot (or could not, because it threw
// before its cleanup ran) is stopped when the test process ends, so no Prosody, PostgreSQL or gateway
// outlives the run.
//
// Our children are unref()'d, so a forgotten one cannot keep the test process alive; the process then
// reaches 'exit', where only synchronous work is possible. That is why stopping here is synchronous:
// signal, poll /proc until gone, escalate to SIGKILL. We do not register node:test `after` hooks: this
// must also work for scripts that import the helpers without the test runner.
import { readFileSync, rmSync } from "node:fs";

export interface TrackedResource {
  /** Shown in the warning when the resource was still running at exit. */
  describe(): string;
  /** Synchronous last-resort stop; must not throw. */
  stopSync(): void;
  /** False for resources that are meant to live until exit (the shared PostgreSQL). */
  warnIfLeaked: boolean;
}

const resources = new Set<TrackedResource>();
let installed = false;

/** Whether test directories should be kept for inspection (env KEEP_TEST_DIRS). */
export const keepTestDirs = (): boolean => Boolean(process.env.KEEP_TEST_DIRS);

/** Removes a temp dir unless KEEP_TEST_DIRS is set (then says where it is). */
export function removeDirSync(dir: string, what: string): void {
  if (keepTestDirs()) {
    process.stderr.write(`[test-support] kept ${what} directory: ${dir}\n`);
    return;
  }
  rmSync(dir, { recursive: true, force: true });
}

/** Registers a resource for the exit safety net; call the returned function once it is stopped. */
export function track(resource: TrackedResource): () => void {
  install();
  resources.add(resource);
  return () => resources.delete(resource);
}

function stopAllSync(): void {
  for (const resource of [...resources]) {
    resources.delete(resource);
    if (resource.warnIfLeaked) {
      process.stderr.write(`[test-support] still running at exit, stopping: ${resource.describe()}\n`);
    }
    try {
      resource.stopSync();
    } catch {
      // last resort: keep stopping the others
    }
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", stopAllSync);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = () => {
      stopAllSync();
      process.off(signal, onSignal);
      // Listening to a signal disables Node's default action; restore it unless someone else handles it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

// ---------------------------------------------------------------------------------------------------
// Synchronous process control (Linux /proc; a plain kill(0) probe elsewhere)

/**
 * Whether the process is still running. After it exits, our own child stays a zombie until Node reaps
 * it in the event loop, which never runs again inside an 'exit' handler: so a zombie counts as gone.
 */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return true;
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/** Sends `signal`, waits up to graceMs for the process to go, then SIGKILLs it. */
export function killSync(pid: number | undefined, signal: NodeJS.Signals, graceMs: number): void {
  if (pid === undefined || !isRunning(pid)) return;
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isRunning(pid) && Date.now() < deadline) sleepSync(20);
  if (isRunning(pid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      return;
    }
    const killDeadline = Date.now() + 2_000;
    while (isRunning(pid) && Date.now() < killDeadline) sleepSync(20);
  }
}
