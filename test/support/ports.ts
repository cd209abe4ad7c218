// Free TCP ports, so that servers started by tests never collide with each other, with a developer's
// own servers or with a parallel test process. There is an unavoidable race between closing the probe
// and the server binding the port; the server helpers detect a failed bind and retry with new ports.
import { createServer, type Server, type AddressInfo } from "node:net";

function listen(host: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ port: 0, host, exclusive: true }, () => resolve(server));
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A port on `host` that the kernel just handed out (and that we released again). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const [port] = await freePorts(1, host);
  return port!;
}

/** `n` distinct free ports: all probes are held open together so the kernel cannot repeat one. */
export async function freePorts(n: number, host = "127.0.0.1"): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) servers.push(await listen(host));
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map(close));
  }
}
