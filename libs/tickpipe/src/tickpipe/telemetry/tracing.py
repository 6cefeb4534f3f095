"""OpenTelemetry tracing across Kafka hops.

The producer side injects W3C trace context into record headers; the consumer's
`process <topic>` span (kind CONSUMER) takes the extracted context as parent and as a link,
so one trace runs from a trade at ingest to its fill. Attributes follow the OpenTelemetry
messaging semantic conventions. Export is configured by the standard `OTEL_*` variables;
with none set, tracing stays a no-op and costs next to nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tickpipe.bus.base import Headers, Record

PROPAGATOR = TraceContextTextMapPropagator()
_PROVIDERS: list[TracerProvider] = []


class _HeadersGetter(Getter[Headers]):
    def get(self, carrier: Headers, key: str) -> list[str] | None:
        for k, v in carrier:
            if k == key:
                return [v.decode("latin-1")]
        return None

    def keys(self, carrier: Headers) -> list[str]:
        return [k for k, _ in carrier]


class _DictSetter(Setter[dict[str, str]]):
    def set(self, carrier: dict[str, str], key: str, value: str) -> None:
        carrier[key] = value


_GETTER = _HeadersGetter()
_SETTER = _DictSetter()


def export_configured() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "") == "none":
        return False
    return any(
        os.environ.get(v)
        for v in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def make_tracer(service: str, processors: Iterable[SpanProcessor] = ()) -> Tracer:
    """A tracer whose spans carry `service.name=tickpipe-<service>`.

    One provider per service keeps service names right when several services share a
    process (the embedded demo). Extra `processors` are for tests (in-memory exporters).
    """
    processors = list(processors)
    if export_configured():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processors.append(BatchSpanProcessor(OTLPSpanExporter()))
    if not processors:
        return trace.NoOpTracer()
    provider = TracerProvider(resource=Resource.create({"service.name": f"tickpipe-{service}"}))
    for p in processors:
        provider.add_span_processor(p)
    _PROVIDERS.append(provider)
    return provider.get_tracer("tickpipe")


def shutdown_tracing() -> None:
    """Flush and stop every provider made here (at process exit)."""
    while _PROVIDERS:
        _PROVIDERS.pop().shutdown()


def extract(headers: Headers) -> Context:
    return PROPAGATOR.extract(headers, getter=_GETTER)


def inject(context: Context | None = None) -> Headers:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=context, setter=_SETTER)
    return tuple((k, v.encode("latin-1")) for k, v in carrier.items())


def start_process_span(tracer: Tracer, record: Record, group: str) -> Span:
    """The CONSUMER span for processing one record, child of (and linked to) its producer."""
    parent = extract(record.headers)
    parent_ctx = trace.get_current_span(parent).get_span_context()
    links = [Link(parent_ctx)] if parent_ctx.is_valid else []
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
        "messaging.consumer.group.name": group,
    }
    if record.key is not None:
        attributes["messaging.kafka.message.key"] = record.key.decode("utf-8", "replace")
    return tracer.start_span(
        f"process {record.topic}",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=attributes,
    )


def start_send_span(tracer: Tracer, topic: str, key: str | None) -> Span:
    """The PRODUCER span at the source of a trace (ingest publishing market data)."""
    attributes: dict[str, str] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": topic,
    }
    if key is not None:
        attributes["messaging.kafka.message.key"] = key
    return tracer.start_span(f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes)
