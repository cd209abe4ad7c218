// Preloaded into the gateway (NODE_OPTIONS="--import .../cpu-profile.js") when BENCH_PROFILE_DIR is
// set: Node 20 refuses --cpu-prof in NODE_OPTIONS, so this starts the V8 profiler through the inspector
// and writes a .cpuprofile (open it in Chrome DevTools or speedscope) into that directory at exit.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

const dir = process.env.BENCH_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 500 });
  session.post("Profiler.start");
  // In the main thread, post() calls back synchronously: usable from an 'exit' handler.
  process.on("exit", () => {
    session.post("Profiler.stop", (err, result) => {
      if (!err) writeFileSync(join(dir, `gateway-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
