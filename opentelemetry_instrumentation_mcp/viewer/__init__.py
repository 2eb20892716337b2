"""See your traces without a backend: an OTLP receiver that prints each trace as a tree as it arrives.

Installed with the ``viewer`` extra (``pip install 'mcp-opentelemetry[viewer]'``), which adds nothing to what
the instrumentation itself needs. From a shell::

    mcp-otel-viewer                      # OTLP/HTTP on 127.0.0.1:4318, OTLP/gRPC on 127.0.0.1:4317

then run a server or client with ``OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318`` and
``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`` (or ``grpc`` and port 4317). The demo and the test suite use the
same receiver and tree in-process: `OtlpReceiver` and `render`.
"""

from opentelemetry_instrumentation_mcp.viewer._live import LiveTraces, main
from opentelemetry_instrumentation_mcp.viewer._receiver import (
    AttributeValue,
    HistogramValue,
    OtlpReceiver,
    ReceivedDataPoint,
    ReceivedLog,
    ReceivedMetric,
    ReceivedSpan,
)
from opentelemetry_instrumentation_mcp.viewer._tree import render

__all__ = [
    "AttributeValue",
    "HistogramValue",
    "LiveTraces",
    "OtlpReceiver",
    "ReceivedDataPoint",
    "ReceivedLog",
    "ReceivedMetric",
    "ReceivedSpan",
    "main",
    "render",
]
