// The TypeScript MCP server: one tool, `add(a, b)`, whose handler runs in a span "ts tool add" started in the
// active context, which OpenInference set to the one the request's `params._meta` carried.
//
//   node server.mjs stdio          serve over stdio; spans are flushed when stdin closes (or on SIGTERM/SIGINT)
//   node server.mjs http <port>    streamable HTTP on http://127.0.0.1:<port>/mcp, stateful sessions (one McpServer
//                                  and transport per session, SSE responses); spans are flushed on SIGTERM/SIGINT
//
// Exports OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT; service name OTEL_SERVICE_NAME, "ts-server" by default.
// Nothing but the protocol goes to stdout; diagnostics go to stderr.

import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { SpanStatusCode } from "@opentelemetry/api";
import { z } from "zod";
import { startTracing } from "./tracing.mjs";

const USAGE = "usage: node server.mjs stdio | node server.mjs http <port>";
const { tracer, shutdown } = startTracing("ts-server");

function mcpServer() {
  const server = new McpServer({ name: "ts-server", version: "1.0.0" });
  server.registerTool(
    "add",
    { description: "Add two numbers.", inputSchema: { a: z.number(), b: z.number() } },
    async ({ a, b }) =>
      tracer.startActiveSpan("ts tool add", async (span) => {
        try {
          span.setAttributes({ "ts.add.a": a, "ts.add.b": b });
          return { content: [{ type: "text", text: String(a + b) }] };
        } catch (error) {
          span.recordException(error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: String(error?.message ?? error) });
          throw error;
        } finally {
          span.end();
        }
      }),
  );
  return server;
}

let stopping;
function stop(code, beforeShutdown = async () => {}) {
  stopping ??= (async () => {
    try {
      await beforeShutdown();
    } catch (error) {
      process.stderr.write(`server.mjs: ${error?.stack ?? error}\n`);
    }
    await shutdown();
    process.exit(code);
  })();
  return stopping;
}

async function serveStdio() {
  await mcpServer().connect(new StdioServerTransport());
  // The SDK's stdio transport does not watch for end of input: the client closing stdin is our signal to flush.
  process.stdin.on("end", () => stop(0));
  process.stdin.on("close", () => stop(0));
  for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => stop(0));
}

async function serveHttp(port) {
  const transports = new Map(); // session id -> transport

  const http = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      if (url.pathname !== "/mcp") {
        res.writeHead(404).end();
        return;
      }
      const sessionId = req.headers["mcp-session-id"];
      let transport = typeof sessionId === "string" ? transports.get(sessionId) : undefined;
      if (transport === undefined && sessionId !== undefined) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32001, message: "Session not found" }, id: null }));
        return;
      }
      if (transport === undefined) {
        // A new session: the transport itself answers 400 to anything but an initialize request.
        transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => transports.set(id, transport),
        });
        transport.onclose = () => {
          if (transport.sessionId) transports.delete(transport.sessionId);
        };
        await mcpServer().connect(transport);
        await transport.handleRequest(req, res);
        if (!transport.sessionId) await transport.close(); // no session came of it
        return;
      }
      await transport.handleRequest(req, res);
    } catch (error) {
      process.stderr.write(`server.mjs: ${error?.stack ?? error}\n`);
      if (!res.headersSent) res.writeHead(500).end();
    }
  });

  await new Promise((resolve, reject) => {
    http.once("error", reject);
    http.listen(port, "127.0.0.1", resolve);
  });
  process.stderr.write(`server.mjs: listening on http://127.0.0.1:${http.address().port}/mcp\n`);

  const closeAll = async () => {
    await Promise.allSettled([...transports.values()].map((transport) => transport.close()));
    http.closeAllConnections?.();
    await new Promise((resolve) => http.close(() => resolve()));
  };
  for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => stop(0, closeAll));
}

async function main([mode, ...rest]) {
  if (mode === "stdio" && rest.length === 0) return serveStdio();
  if (mode === "http" && rest.length === 1 && /^\d+$/.test(rest[0])) return serveHttp(Number(rest[0]));
  throw new Error(USAGE);
}

main(process.argv.slice(2)).catch(async (error) => {
  process.stderr.write(`server.mjs: ${error?.stack ?? error}\n`);
  await shutdown().catch(() => {});
  process.exit(1);
});
