"""Prometheus metrics, one registry per running bot (tests start many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.received = Counter("siyu_received_total", "Inbound events accepted into the inbox", ["channel"],
                                registry=r)
        self.deduplicated = Counter("siyu_deduplicated_total", "Inbound events answered as duplicates",
                                    ["channel"], registry=r)
        self.rejected = Counter("siyu_rejected_total", "Inbound requests refused", ["channel", "reason"], registry=r)
        self.ignored = Counter("siyu_ignored_total", "Inbound messages of types the bot does not handle",
                               ["channel"], registry=r)
        self.ack_latency = Histogram("siyu_ack_latency_seconds", "Time from request to acknowledgement",
                                     ["channel"], buckets=LATENCY_BUCKETS, registry=r)
        self.processed = Counter("siyu_processed_total", "Inbox rows processed", ["status"], registry=r)
        self.handler_errors = Counter("siyu_handler_errors_total", "Handler failures", ["handler"], registry=r)
        self.outbox_rows = Gauge("siyu_outbox_rows", "Outbox rows by state", ["state"], registry=r)
        self.inbox_lag = Gauge("siyu_inbox_lag_seconds", "Age of the oldest inbox event not yet processed",
                               registry=r)
        self.outbox_lag = Gauge("siyu_outbox_lag_seconds", "How long the oldest due delivery has waited",
                                registry=r)
        self.inbox_rows = Gauge("siyu_inbox_rows", "Inbox rows by state", ["state"], registry=r)
        self.sent = Counter("siyu_sent_total", "Delivery attempts by outcome", ["kind", "outcome"], registry=r)
        self.send_latency = Histogram("siyu_send_latency_seconds", "Time a sender took for one delivery",
                                      ["kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_latency = Histogram("siyu_delivery_delay_seconds", "From outbox row creation to sent",
                                       ["kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.wecom_calls = Counter("siyu_wecom_calls_total", "WeCom API calls by path and outcome (ok, errcode, "
                                   "transport)", ["path", "outcome"], registry=r)
        self.wecom_token_fetches = Counter("siyu_wecom_token_fetches_total", "gettoken calls", registry=r)
        self.cron_runs = Counter("siyu_cron_runs_total", "Cron job runs", ["job", "outcome"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
