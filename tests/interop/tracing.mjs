// Tracing for the interop client and server: an OTLP/HTTP exporter, a batch processor, the W3C propagators, and
// OpenInference's MCP instrumentation, which carries the trace context in `params._meta` of every MCP request.
//
// OpenInference cannot hook the SDK by itself when it is loaded as ESM: its module hooks are require hooks (CJS
// only), and the SDK's exports map has no plain module names to hook. So the SDK's transport modules are handed
// to `manuallyInstrument(...)`, which wraps `send` (inject into `_meta`) and `start` (extract from `_meta` around
// `onmessage`) on each transport class's prototype. It makes no span of its own.
//
// Nothing here writes to stdout: on stdio, stdout is the protocol channel.

import { context, diag, DiagLogLevel, trace } from "@opentelemetry/api";
import { MCPInstrumentation } from "@arizeai/openinference-instrumentation-mcp";
import * as clientStdioModule from "@modelcontextprotocol/sdk/client/stdio.js";
import * as clientStreamableHTTPModule from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import * as serverStdioModule from "@modelcontextprotocol/sdk/server/stdio.js";
import * as serverStreamableHTTPModule from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { OTLPTraceExporter as OTLPProtoTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { OTLPTraceExporter as OTLPJsonTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

const stderrLogger = Object.fromEntries(
  ["error", "warn", "info", "debug", "verbose"].map((level) => [
    level,
    (message, ...args) => process.stderr.write(`otel ${level}: ${message} ${args.map(String).join(" ")}\n`),
  ]),
);

/** The exporter OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL asks for: http/protobuf (the default) or http/json. */
function exporter() {
  const protocol =
    process.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || process.env.OTEL_EXPORTER_OTLP_PROTOCOL || "http/protobuf";
  if (protocol === "http/json") return new OTLPJsonTraceExporter();
  if (protocol !== "http/protobuf") throw new Error(`unsupported OTLP protocol ${JSON.stringify(protocol)}`);
  return new OTLPProtoTraceExporter(); // endpoint from OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, /v1/traces appended
}

/**
 * Start tracing: the provider is registered globally (with the AsyncLocalStorage context manager and the W3C
 * trace-context and baggage propagators), and OpenInference is applied to the SDK's stdio and streamable HTTP
 * transports, client and server. Returns the tracer and `shutdown()`, which flushes every span.
 */
export function startTracing(defaultService) {
  if (process.env.OTEL_LOG_LEVEL) {
    diag.setLogger(stderrLogger, DiagLogLevel[process.env.OTEL_LOG_LEVEL.toUpperCase()] ?? DiagLogLevel.INFO);
  }
  const resource = defaultResource()
    .merge(resourceFromAttributes({ "service.name": defaultService }))
    .merge(detectResources({ detectors: [envDetector] })); // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter())] });
  provider.register();

  new MCPInstrumentation().manuallyInstrument({
    clientStdioModule,
    serverStdioModule,
    clientStreamableHTTPModule,
    serverStreamableHTTPModule,
  });

  let shutdown;
  return {
    tracer: trace.getTracer("mcp-opentelemetry-interop"),
    context,
    shutdown: () => (shutdown ??= provider.shutdown()),
  };
}
