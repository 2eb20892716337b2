// The TypeScript agent: inside a span "ts agent turn" it calls the tool `add` with {a: 2, b: 3} of an MCP server,
// and prints the result's text on stdout. OpenInference puts the span's context in the request's `params._meta`.
//
//   node client.mjs stdio <command> [args...]   spawn the server; it gets this process's environment (OTEL_* too)
//   node client.mjs http <url>                  streamable HTTP, e.g. http://127.0.0.1:8000/mcp
//
// Exports OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT; service name OTEL_SERVICE_NAME, "ts-client" by default.
// Exits 0 on success; non-zero, with a message on stderr, on any failure.

import { SpanStatusCode } from "@opentelemetry/api";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startTracing } from "./tracing.mjs";

const USAGE = "usage: node client.mjs stdio <command> [args...] | node client.mjs http <url>";
const TIMEOUT_MS = Number(process.env.INTEROP_TIMEOUT_MS || 60000);

function transportFor([mode, ...rest]) {
  if (mode === "stdio" && rest.length >= 1) {
    const [command, ...args] = rest;
    return new StdioClientTransport({ command, args, env: { ...process.env }, stderr: "inherit" });
  }
  if (mode === "http" && rest.length === 1) {
    return new StreamableHTTPClientTransport(new URL(rest[0]));
  }
  throw new Error(USAGE);
}

async function main(argv) {
  const transport = transportFor(argv);
  const { tracer, shutdown } = startTracing("ts-client");
  const client = new Client({ name: "ts-client", version: "1.0.0" });
  try {
    await client.connect(transport);
    const text = await tracer.startActiveSpan("ts agent turn", async (span) => {
      try {
        const result = await client.callTool({ name: "add", arguments: { a: 2, b: 3 } });
        const content = (result.content ?? []).find((item) => item.type === "text");
        if (result.isError || content === undefined) {
          throw new Error(`add failed: ${JSON.stringify(result)}`);
        }
        return content.text;
      } catch (error) {
        span.recordException(error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: String(error?.message ?? error) });
        throw error;
      } finally {
        span.end();
      }
    });
    process.stdout.write(`${text}\n`);
  } finally {
    try {
      if (transport instanceof StreamableHTTPClientTransport && transport.sessionId) {
        await transport.terminateSession(); // DELETE the session; a server that refuses (405) is fine
      }
    } catch {
      // the session is the server's to forget
    }
    await client.close(); // stdio: closes the server's stdin, waits for it to exit (SIGTERM after 2 s)
    await shutdown().catch((error) => {
      throw new Error(`exporting the spans failed: ${error?.message ?? error}`);
    });
  }
}

setTimeout(() => {
  process.stderr.write(`client.mjs: timed out after ${TIMEOUT_MS} ms\n`);
  process.exit(2);
}, TIMEOUT_MS); // kept referenced: a hang must not end as a silent exit 0 when the event loop drains

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`client.mjs: ${error?.stack ?? error}\n`);
    process.exit(1);
  },
);
