"""``mcp-otel-viewer``: receive OTLP on the standard ports and print each trace as a tree once it settles."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

from opentelemetry_instrumentation_mcp.viewer._receiver import OtlpReceiver, ReceivedSpan
from opentelemetry_instrumentation_mcp.viewer._tree import render


@dataclass
class _Trace:
    spans: list[ReceivedSpan] = field(default_factory=list)
    last_arrival: float = 0.0
    printed: int = 0
    """How many of its spans were in the last print."""


class LiveTraces:
    """Spans grouped by trace; a trace is due for printing once no span of it has arrived for ``settle`` seconds.

    Spans of one trace come from several processes, each exporting on its own schedule: a trace that grows
    after it was printed is printed again, whole, marked as updated. Traces quiet for ``forget`` seconds are
    dropped, so a viewer left running holds only recent ones.
    """

    def __init__(self, settle: float = 1.0, forget: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self._settle = settle
        self._forget = forget
        self._clock = clock
        self._traces: dict[str, _Trace] = {}
        self._lock = threading.Lock()

    def add(self, spans: Sequence[ReceivedSpan]) -> None:
        """Take one export's spans (called from the receiver's threads)."""
        now = self._clock()
        with self._lock:
            for span in spans:
                entry = self._traces.setdefault(span.trace_id, _Trace())
                entry.spans.append(span)
                entry.last_arrival = now

    def due(self, *, flush: bool = False) -> list[str]:
        """The traces to print now, rendered, oldest first; with ``flush``, every trace not printed in full."""
        now = self._clock()
        out: list[str] = []
        with self._lock:
            for trace_id, entry in list(self._traces.items()):
                quiet = now - entry.last_arrival
                if len(entry.spans) > entry.printed and (flush or quiet >= self._settle):
                    note = f"  (updated: {len(entry.spans)} spans)" if entry.printed else ""
                    out.append(render(entry.spans) + note)
                    entry.printed = len(entry.spans)
                elif quiet >= self._forget:
                    del self._traces[trace_id]
        return out


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mcp-otel-viewer",
        description="Receive OTLP (HTTP and gRPC) and print each trace as a tree as it arrives. "
        "Metrics and logs are accepted and not shown.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--http-port", type=int, default=4318, help="OTLP/HTTP port, 0 for any (default: %(default)s)")
    parser.add_argument("--grpc-port", type=int, default=4317, help="OTLP/gRPC port, 0 for any (default: %(default)s)")
    parser.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="print a trace once no span of it has arrived for this many seconds (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the viewer until interrupted (Ctrl-C or SIGTERM), then print what is still pending."""
    args = _arguments(argv)
    live = LiveTraces(settle=args.settle)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    receiver = OtlpReceiver(
        grpc=True, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port, store=False, on_spans=live.add
    )
    try:
        receiver.__enter__()
    except OSError as error:
        sys.exit(
            f"mcp-otel-viewer: cannot listen on {args.host} ports {args.http_port}/{args.grpc_port}: {error}. "
            "Is a collector already running there? Choose others with --http-port and --grpc-port."
        )
    try:
        print(
            f"Receiving OTLP/HTTP on {receiver.endpoint} and OTLP/gRPC on {receiver.grpc_endpoint}.\n"
            f"Point a process at it with OTEL_EXPORTER_OTLP_ENDPOINT={receiver.endpoint} "
            "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf (or the gRPC address with grpc). Ctrl-C stops.\n",
            flush=True,
        )
        while not stop.wait(0.1):
            for text in live.due():
                print(f"{text}\n", flush=True)
    finally:
        receiver.__exit__(None, None, None)
        for text in live.due(flush=True):
            print(f"{text}\n", flush=True)
