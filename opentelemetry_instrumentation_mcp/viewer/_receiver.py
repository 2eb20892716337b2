"""An in-process OTLP receiver: HTTP (protobuf or JSON), and gRPC when asked, for the viewer, the demo and the tests.

Usage::

    with OtlpReceiver() as receiver:
        exporter = OTLPSpanExporter(endpoint=receiver.endpoint + "/v1/traces")
        ...
        [span] = receiver.wait_for_spans(lambda s: s.name == "tools/call")

Everything received is decoded into frozen dataclasses holding plain Python values. The HTTP side is the standard
library's threading server; the gRPC side registers the OTLP services generated in ``opentelemetry-proto``.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from opentelemetry.trace import SpanKind
from typing_extensions import Self

if TYPE_CHECKING:
    import grpc

__all__ = [
    "AttributeValue",
    "Attributes",
    "HistogramValue",
    "OtlpReceiver",
    "ReceivedDataPoint",
    "ReceivedLog",
    "ReceivedMetric",
    "ReceivedSpan",
    "WaitCondition",
]

AttributeValue: TypeAlias = (
    str | bool | int | float | bytes | tuple["AttributeValue", ...] | dict[str, "AttributeValue"] | None
)
"""A decoded OTLP ``AnyValue``: arrays become tuples, kvlists dicts, an empty value None."""
Attributes: TypeAlias = dict[str, AttributeValue]


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as received over OTLP."""

    name: str
    kind: SpanKind
    trace_id: str
    span_id: str
    parent_span_id: str | None
    attributes: Attributes
    status_code: str
    status_description: str
    links: tuple[tuple[str, str], ...]
    events: tuple[tuple[str, Attributes], ...]
    resource: Attributes
    scope_name: str
    start_time_unix_nano: int
    end_time_unix_nano: int


@dataclass(frozen=True)
class HistogramValue:
    """Value of a histogram data point; buckets stay empty for exponential histograms and summaries."""

    count: int
    sum: float
    bucket_counts: tuple[int, ...]
    explicit_bounds: tuple[float, ...]


@dataclass(frozen=True)
class ReceivedDataPoint:
    """One metric data point: its attributes and its value."""

    attributes: Attributes
    value: int | float | HistogramValue


@dataclass(frozen=True)
class ReceivedMetric:
    """One metric (with all data points of one export) as received over OTLP."""

    name: str
    description: str
    unit: str
    data_type: str
    """The OTLP data case: "sum", "gauge", "histogram", "exponential_histogram" or "summary"."""
    data_points: tuple[ReceivedDataPoint, ...]
    resource: Attributes
    scope_name: str


@dataclass(frozen=True)
class ReceivedLog:
    """One log record as received over OTLP."""

    body: str
    severity_text: str
    severity_number: int
    trace_id: str | None
    span_id: str | None
    attributes: Attributes
    resource: Attributes
    scope_name: str


T = TypeVar("T")
WaitCondition: TypeAlias = int | Callable[[T], bool]
"""A minimum item count, or a predicate that at least one item must satisfy."""


def _any_value(value: AnyValue) -> AttributeValue:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_any_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind is None:
        return None
    result: str | bool | int | float | bytes = getattr(value, kind)
    return result


def _attributes(key_values: Iterable[KeyValue]) -> Attributes:
    return {kv.key: _any_value(kv.value) for kv in key_values}


def _hex_id(raw: bytes) -> str | None:
    """Hex-encode a trace/span id; None when absent or all zero."""
    return raw.hex() if raw.strip(b"\0") else None


def _spans(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    return [
        ReceivedSpan(
            name=span.name,
            kind=SpanKind(max(span.kind - 1, 0)),  # OTLP counts from UNSPECIFIED=0
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_span_id=_hex_id(span.parent_span_id),
            attributes=_attributes(span.attributes),
            status_code=Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
            status_description=span.status.message,
            links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
            events=tuple((event.name, _attributes(event.attributes)) for event in span.events),
            resource=_attributes(resource_spans.resource.attributes),
            scope_name=scope_spans.scope.name,
            start_time_unix_nano=span.start_time_unix_nano,
            end_time_unix_nano=span.end_time_unix_nano,
        )
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def _data_points(metric: Metric) -> tuple[ReceivedDataPoint, ...]:
    data_type = metric.WhichOneof("data")
    if data_type in ("sum", "gauge"):
        number_points = metric.sum.data_points if data_type == "sum" else metric.gauge.data_points
        return tuple(
            ReceivedDataPoint(
                _attributes(point.attributes),
                point.as_int if point.WhichOneof("value") == "as_int" else point.as_double,
            )
            for point in number_points
        )
    if data_type == "histogram":
        return tuple(
            ReceivedDataPoint(
                _attributes(point.attributes),
                HistogramValue(
                    point.count,
                    point.sum,
                    tuple(point.bucket_counts),
                    tuple(point.explicit_bounds),
                ),
            )
            for point in metric.histogram.data_points
        )
    if data_type == "exponential_histogram":
        return tuple(
            ReceivedDataPoint(
                _attributes(point.attributes),
                HistogramValue(point.count, point.sum, (), ()),
            )
            for point in metric.exponential_histogram.data_points
        )
    return tuple(
        ReceivedDataPoint(
            _attributes(point.attributes),
            HistogramValue(point.count, point.sum, (), ()),
        )
        for point in metric.summary.data_points
    )


def _metrics(request: ExportMetricsServiceRequest) -> list[ReceivedMetric]:
    return [
        ReceivedMetric(
            name=metric.name,
            description=metric.description,
            unit=metric.unit,
            data_type=metric.WhichOneof("data") or "",
            data_points=_data_points(metric),
            resource=_attributes(resource_metrics.resource.attributes),
            scope_name=scope_metrics.scope.name,
        )
        for resource_metrics in request.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    ]


def _body_text(body: AnyValue) -> str:
    """A string body as is, an empty one as "", anything else as the repr of its value."""
    value = _any_value(body)
    if value is None:
        return ""
    return value if isinstance(value, str) else repr(value)


def _logs(request: ExportLogsServiceRequest) -> list[ReceivedLog]:
    return [
        ReceivedLog(
            body=_body_text(record.body),
            severity_text=record.severity_text,
            severity_number=record.severity_number,
            trace_id=_hex_id(record.trace_id),
            span_id=_hex_id(record.span_id),
            attributes=_attributes(record.attributes),
            resource=_attributes(resource_logs.resource.attributes),
            scope_name=scope_logs.scope.name,
        )
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]


class _Signal(Generic[T]):
    """A thread-safe list of received items of one signal, with waiting."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._items: list[T] = []
        self._changed = threading.Condition()

    def add(self, items: Sequence[T]) -> None:
        with self._changed:
            self._items.extend(items)
            self._changed.notify_all()

    def snapshot(self) -> list[T]:
        with self._changed:
            return list(self._items)

    def clear(self) -> None:
        with self._changed:
            self._items.clear()

    def wait(self, condition: WaitCondition[T], timeout: float) -> list[T]:
        """Wait until ``condition`` holds; see `OtlpReceiver.wait_for_spans`."""

        def check() -> list[T] | None:
            if isinstance(condition, int):
                return list(self._items) if len(self._items) >= condition else None
            return [item for item in self._items if condition(item)] or None

        deadline = time.monotonic() + timeout
        with self._changed:
            while (result := check()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    wanted = f"at least {condition}" if isinstance(condition, int) else "a matching item"
                    received = "".join(f"\n  - {item!r}" for item in self._items) or " nothing"
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {wanted} of {self._label}; "
                        f"received {len(self._items)}:{received}"
                    )
                self._changed.wait(remaining)
            return result


def _url_host(host: str) -> str:
    """The host as a URL names it: a wildcard address as the loopback one, IPv6 in brackets."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class _Route:
    """One OTLP/HTTP path: the Export*ServiceRequest it takes, and what receives it and answers."""

    request: type[Message]
    receive: Callable[[Any], Message]


_OTLP_JSON_IDS = frozenset({"traceId", "spanId", "parentSpanId"})
"""The fields OTLP/JSON writes in hex, where the protobuf JSON mapping expects base64."""


def _from_otlp_json(value: Any) -> Any:
    """OTLP/JSON, decoded, as the protobuf JSON mapping reads it: trace and span ids from hex to base64."""
    if isinstance(value, dict):
        return {
            key: base64.b64encode(bytes.fromhex(item)).decode()
            if key in _OTLP_JSON_IDS and isinstance(item, str)
            else _from_otlp_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_from_otlp_json(item) for item in value]
    return value


def _parse_otlp_json(body: bytes, request: Message) -> Message:
    """An OTLP/JSON body, read into the request message."""
    decoded = json.loads(body)
    if not isinstance(decoded, dict):
        raise ValueError("not a JSON object")
    return json_format.ParseDict(_from_otlp_json(decoded), request, ignore_unknown_fields=True)


_MAX_LINE = 65536


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], routes: dict[str, _Route]) -> None:
        super().__init__(address, _OtlpHttpHandler)
        self.routes = routes


class _OtlpHttpHandler(BaseHTTPRequestHandler):
    server: _HttpServer
    timeout = 30  # seconds: a client that stops sending mid-body does not hold its thread for good

    def do_POST(self) -> None:
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type not in ("application/x-protobuf", "application/json"):
            self.send_error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"unsupported {content_type!r}")
            return
        encoding = self.headers.get("Content-Encoding", "identity").lower()
        if encoding not in ("identity", "gzip"):
            self.send_error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"unsupported {encoding!r}")
            return
        try:
            body = self._read_body()
            if encoding == "gzip":
                body = gzip.decompress(body)
            if content_type == "application/json":
                request = _parse_otlp_json(body, route.request())
                payload = json_format.MessageToJson(route.receive(request)).encode()
            else:
                payload = route.receive(route.request.FromString(body)).SerializeToString()
        except (
            DecodeError,
            json_format.ParseError,
            ValueError,
            TypeError,
            RecursionError,
            OSError,
            EOFError,
            zlib.error,
        ) as error:
            self.send_error(HTTPStatus.BAD_REQUEST, f"cannot decode body: {error}")
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> bytes:
        """The request's body, sent with a length or in chunks (as OpenTelemetry JS's exporters send it)."""
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))
        chunks = []
        while size := int(self.rfile.readline(_MAX_LINE).split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline(_MAX_LINE)
        while self.rfile.readline(_MAX_LINE).strip():
            pass  # trailers
        return b"".join(chunks)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


RequestT = TypeVar("RequestT", bound=Message)


class _GrpcServicer(Generic[RequestT]):
    """Implements the ``Export`` RPC of one OTLP gRPC service."""

    def __init__(self, receive: Callable[[RequestT], Message]) -> None:
        self._receive = receive

    def Export(self, request: RequestT, context: grpc.ServicerContext) -> Message:
        return self._receive(request)


class OtlpReceiver:
    """OTLP receiver: HTTP (protobuf or JSON) always, gRPC when ``grpc=True``; on 127.0.0.1 and free ports unless told.

    Use as a context manager; the servers run inside the ``with`` block. ``on_spans`` is called with each
    export's spans, in the receiving thread; with ``store=False`` nothing is kept (a long-running viewer).
    """

    _http: _HttpServer | None = None
    _http_thread: threading.Thread | None = None
    _grpc_server: grpc.Server | None = None

    def __init__(
        self,
        *,
        grpc: bool = False,
        host: str = "127.0.0.1",
        http_port: int = 0,
        grpc_port: int = 0,
        store: bool = True,
        on_spans: Callable[[list[ReceivedSpan]], None] | None = None,
    ) -> None:
        self._use_grpc = grpc
        self._host = host
        self._http_port = http_port
        self._grpc_port = grpc_port
        self._store = store
        self._on_spans = on_spans
        self._spans = _Signal[ReceivedSpan]("spans")
        self._metrics = _Signal[ReceivedMetric]("metrics")
        self._logs = _Signal[ReceivedLog]("logs")

    def _receive_traces(self, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
        spans = _spans(request)
        if self._store:
            self._spans.add(spans)
        if self._on_spans is not None:
            self._on_spans(spans)
        return ExportTraceServiceResponse()

    def _receive_metrics(self, request: ExportMetricsServiceRequest) -> ExportMetricsServiceResponse:
        if self._store:
            self._metrics.add(_metrics(request))
        return ExportMetricsServiceResponse()

    def _receive_logs(self, request: ExportLogsServiceRequest) -> ExportLogsServiceResponse:
        if self._store:
            self._logs.add(_logs(request))
        return ExportLogsServiceResponse()

    def __enter__(self) -> Self:
        self._http = _HttpServer(
            (self._host, self._http_port),
            {
                "/v1/traces": _Route(ExportTraceServiceRequest, self._receive_traces),
                "/v1/metrics": _Route(ExportMetricsServiceRequest, self._receive_metrics),
                "/v1/logs": _Route(ExportLogsServiceRequest, self._receive_logs),
            },
        )
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._http_thread.start()
        if self._use_grpc:
            try:
                self._start_grpc()
            except BaseException:
                self.__exit__(None, None, None)
                raise
        return self

    def _start_grpc(self) -> None:
        import grpc  # noqa: PLC0415 - grpcio only when gRPC is asked for
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc  # noqa: PLC0415
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc  # noqa: PLC0415
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc  # noqa: PLC0415

        # gRPC shares a port with any other listener by default (SO_REUSEPORT): a port in use must be refused
        server = grpc.server(ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
        # The generated *_pb2_grpc modules are untyped.
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _GrpcServicer(self._receive_traces), server
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _GrpcServicer(self._receive_metrics), server
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _GrpcServicer(self._receive_logs), server
        )
        address = f"{self._host}:{self._grpc_port}"
        try:
            port = server.add_insecure_port(address)  # 0 on failure; recent grpcio raise instead
        except RuntimeError as error:
            raise OSError(f"cannot listen for OTLP/gRPC on {address}: {error}") from error
        if not port:
            raise OSError(f"cannot listen for OTLP/gRPC on {address}")
        self._grpc_port = port
        server.start()
        self._grpc_server = server

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=None).wait(timeout=1.0)
            self._grpc_server = None
        if self._http is not None and self._http_thread is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http_thread.join(timeout=1.0)
            self._http = self._http_thread = None

    @property
    def endpoint(self) -> str:
        """Base URL of the HTTP receiver, ``http://HOST:PORT``; append ``/v1/traces`` etc."""
        if self._http is None:
            raise RuntimeError("OtlpReceiver is not running; use it as a context manager")
        return f"http://{_url_host(self._host)}:{self._http.server_address[1]}"

    @property
    def grpc_endpoint(self) -> str:
        """Target of the plaintext gRPC receiver, ``http://HOST:PORT``."""
        if self._grpc_server is None:
            raise RuntimeError("gRPC is not running; use `with OtlpReceiver(grpc=True)`")
        return f"http://{_url_host(self._host)}:{self._grpc_port}"

    @property
    def spans(self) -> list[ReceivedSpan]:
        """Snapshot of all spans received so far, in arrival order."""
        return self._spans.snapshot()

    @property
    def metrics(self) -> list[ReceivedMetric]:
        """Snapshot of all metrics received so far (one entry per metric per export)."""
        return self._metrics.snapshot()

    @property
    def logs(self) -> list[ReceivedLog]:
        """Snapshot of all log records received so far."""
        return self._logs.snapshot()

    def wait_for_spans(self, condition: WaitCondition[ReceivedSpan] = 1, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Wait until spans arrive, or raise AssertionError listing what did arrive.

        An int ``n`` waits for at least ``n`` spans and returns all of them; a predicate
        waits for at least one span it accepts and returns every span it accepts.
        """
        return self._spans.wait(condition, timeout)

    def wait_for_metrics(
        self, condition: WaitCondition[ReceivedMetric] = 1, timeout: float = 10.0
    ) -> list[ReceivedMetric]:
        """Like `wait_for_spans`, for metrics."""
        return self._metrics.wait(condition, timeout)

    def wait_for_logs(self, condition: WaitCondition[ReceivedLog] = 1, timeout: float = 10.0) -> list[ReceivedLog]:
        """Like `wait_for_spans`, for log records."""
        return self._logs.wait(condition, timeout)

    def clear(self) -> None:
        """Forget everything received so far."""
        self._spans.clear()
        self._metrics.clear()
        self._logs.clear()
