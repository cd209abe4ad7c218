// The gateway's HTTP endpoint (DMUC_HTTP, off by default, on 127.0.0.1 when only a port is given):
// /metrics for Prometheus, /healthz (the process answers), /readyz (database and XMPP connected),
// and the operator console (src/shell/console.ts) when DMUC_CONSOLE_TOKEN is set.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "../log.js";

export type Handler = (request: IncomingMessage, response: ServerResponse, url: URL) => Promise<void> | void;

export interface Readiness {
  /** Problems that make the gateway not ready; empty when ready. */
  check(): Promise<string[]>;
}

export function send(response: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, { "content-type": contentType, "cache-control": "no-store", "x-content-type-options": "nosniff", ...headers });
  response.end(body);
}

export async function startHttp(listen: { host: string; port: number }, routes: Map<string, Handler>, log: Logger): Promise<Server> {
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://gateway");
    const handler = routes.get(url.pathname) ?? [...routes.entries()].find(([path]) => path.endsWith("/") && url.pathname.startsWith(path))?.[1];
    if (request.method !== "GET" && request.method !== "HEAD") return send(response, 405, "text/plain", "method not allowed\n", { allow: "GET, HEAD" });
    if (!handler) return send(response, 404, "text/plain", "not found\n");
    Promise.resolve(handler(request, response, url)).catch((err: unknown) => {
      log.warn("http.failed", { path: url.pathname, error: err });
      if (!response.headersSent) send(response, 500, "text/plain", "internal error\n");
      else response.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(new Error(`cannot listen on ${listen.host}:${listen.port} (DMUC_HTTP): ${err.code === "EADDRINUSE" ? "the port is in use" : err.message}`)),
    );
    server.listen(listen.port, listen.host, () => resolve());
  });
  log.info("http.listening", { host: listen.host, port: listen.port, paths: [...routes.keys()] });
  return server;
}

export function stopHttp(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
