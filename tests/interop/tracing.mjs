// Tracing for the interop client and server: the OpenTelemetry JS SDK (`NodeSDK`, OTLP/HTTP), and
// OpenInference's MCP instrumentation, which carries the trace context in `params._meta` of every MCP request.
//
// OpenInference cannot hook the SDK by itself when it is loaded as ESM: its module hooks are require hooks (CJS
// only), and the SDK's exports map has no plain module names to hook. So the SDK's transport modules are handed
// to `manuallyInstrument(...)`, which wraps `send` (inject into `_meta`) and `start` (extract from `_meta` around
// `onmessage`) on each transport class's prototype. It makes no span of its own.
//
// Nothing here writes to stdout, the protocol channel on stdio, unless OTEL_LOG_LEVEL is set: NodeSDK's console
// logger writes info and debug there.

import { context, trace } from "@opentelemetry/api";
import { MCPInstrumentation } from "@arizeai/openinference-instrumentation-mcp";
import * as clientStdioModule from "@modelcontextprotocol/sdk/client/stdio.js";
import * as clientStreamableHTTPModule from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import * as serverStdioModule from "@modelcontextprotocol/sdk/server/stdio.js";
import * as serverStreamableHTTPModule from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { NodeSDK } from "@opentelemetry/sdk-node";

/**
 * Start tracing as a Node service would: `NodeSDK` configured by the environment (OTEL_SERVICE_NAME, else
 * `defaultService`; OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_PROTOCOL, http/protobuf or http/json;
 * OTEL_LOG_LEVEL to the console), with the W3C trace-context and baggage propagators, and OpenInference applied to
 * the SDK's stdio and streamable HTTP transports, client and server. Returns the tracer and `shutdown()`, which
 * flushes every span.
 */
export function startTracing(defaultService) {
  const mcp = new MCPInstrumentation();
  const serviceName = process.env.OTEL_SERVICE_NAME ? undefined : defaultService; // given, it would win over the env
  const sdk = new NodeSDK({ serviceName, instrumentations: [mcp] });
  sdk.start();
  mcp.manuallyInstrument({
    clientStdioModule,
    serverStdioModule,
    clientStreamableHTTPModule,
    serverStreamableHTTPModule,
  });

  let shutdown;
  return {
    tracer: trace.getTracer("mcp-opentelemetry-interop"),
    context,
    shutdown: () => (shutdown ??= sdk.shutdown()),
  };
}
