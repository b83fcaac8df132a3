"""Counters and gauges of the collector, in a registry that `/metrics` renders (Prometheus)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase


class CollectorMetrics:
    """Everything the collector counts; one instance per collector (tests use their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.readings_in = Counter("pumpwatch_readings_in_total",
                                   "Readings accepted into the pipeline", ["source"], registry=r)
        self.rejected = Counter("pumpwatch_readings_rejected_total",
                                "Values or messages rejected, by reason", ["source", "reason"],
                                registry=r)
        self.flagged = Counter("pumpwatch_readings_flagged_total",
                               "Readings kept but flagged with a bad quality", ["quality"], registry=r)
        self.dropped = Counter("pumpwatch_readings_dropped_total",
                               "Readings dropped, by reason (never silent)", ["reason"], registry=r)
        self.live_messages_dropped = Counter("pumpwatch_live_messages_dropped_total",
                                    "Live-view messages not sent: broker away or send queue full (the "
                                    "readings are in the series store)", registry=r)
        self.intake_paused = Counter("pumpwatch_intake_paused_seconds_total",
                                     "Time MQTT intake waited for the writer to catch up", registry=r)
        self.written = Counter("pumpwatch_readings_written_total",
                               "Readings written to the series store", registry=r)
        self.buffer_depth = Gauge("pumpwatch_buffer_depth",
                                  "Readings in the durable buffer not yet in the series store",
                                  registry=r)
        self.buffer_capacity = Gauge("pumpwatch_buffer_capacity",
                                     "Readings the durable buffer holds at most", registry=r)
        self.write_latency = Histogram("pumpwatch_store_write_seconds",
                                       "Time of one batch write to the series store", registry=r,
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.write_errors = Counter("pumpwatch_store_write_errors_total",
                                    "Failed batch writes, by kind", ["kind"], registry=r)
        self.device_state = Gauge("pumpwatch_modbus_device_state",
                                  "Modbus device health: 2 online, 1 degraded, 0 offline",
                                  ["device"], registry=r)
        self.polls = Counter("pumpwatch_modbus_polls_total", "Poll cycles, by outcome",
                             ["device", "outcome"], registry=r)
        self.overruns = Counter("pumpwatch_modbus_overruns_total",
                                "Poll cycles that took longer than the interval (missed slots skipped)",
                                ["device"], registry=r)
        self.poll_duration = Histogram("pumpwatch_modbus_poll_seconds",
                                       "Time of one poll cycle of a device", ["device"], registry=r,
                                       buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1))
        self.mqtt_messages = Counter("pumpwatch_mqtt_messages_total", "MQTT messages received",
                                     registry=r)
        self.mqtt_connected = Gauge("pumpwatch_mqtt_connected", "1 while connected to the broker",
                                    registry=r)
        self.live_dropped = Counter("pumpwatch_live_dropped_total",
                                    "Live-bus events a slow subscriber missed (oldest dropped)",
                                    ["subscriber"], registry=r)
        # A member of a shared-subscription group (`collector.group`).
        self.group_members = Gauge("pumpwatch_group_members",
                                   "Collectors present in this collector's shared-subscription group",
                                   registry=r)
        self.group_time_lane = Gauge("pumpwatch_group_time_lane",
                                     "The microsecond lane this member's MQTT readings fall on "
                                     "(collector.sources.mqtt_decode.TimeLane)", registry=r)
        self.group_lane_clashes = Gauge("pumpwatch_group_lane_clashes",
                                        "Other members present on this member's lane with no lane left "
                                        "to move to (more members than lanes), or announcing no lane "
                                        "(an older version): their readings may overwrite each other's",
                                        registry=r)
        self.estates_spoken_for = Gauge("pumpwatch_group_estates_spoken_for",
                                        "Estates whose alarm events this member of the group announces",
                                        registry=r)
        self.peer_readings = Counter("pumpwatch_group_peer_readings_total",
                                     "Readings the other members took, fed to this collector's rules",
                                     registry=r)
        self.peer_refused = Counter("pumpwatch_group_peer_refused_total",
                                    "Live messages of the group not fed to the rules, by reason",
                                    ["reason"], registry=r)
        # An edge's uplink to the centre (`pumpwatch edge`).
        self.uplink_connected = Gauge("pumpwatch_uplink_connected",
                                      "1 while the edge is connected to the centre's broker", registry=r)
        self.uplink_batches = Counter("pumpwatch_uplink_batches_total",
                                      "Batches sent to the centre, by outcome (acked, failed)", ["outcome"],
                                      registry=r)
        self.uplink_bytes = Counter("pumpwatch_uplink_bytes_total",
                                    "Payload bytes of batches the centre's broker acknowledged", registry=r)
        self.uplink_readings = Counter("pumpwatch_uplink_readings_total",
                                       "Readings in batches the centre's broker acknowledged", registry=r)
        self.clock_offset = Gauge("pumpwatch_clock_offset_seconds",
                                  "The centre's clock minus this edge's, last measured", registry=r)
        self.backlog_age = Gauge("pumpwatch_backlog_age_seconds",
                                 "Age of the oldest reading in the durable buffer", registry=r)
        self.alarm_outbox = Gauge("pumpwatch_alarm_outbox_depth",
                                  "Alarm events on disk waiting for the centre's broker", registry=r)
        # The centre's side of its edges (`pumpwatch collect` with `edges:` in the site).
        self.edge_batches = Counter("pumpwatch_edge_batches_total",
                                    "Edge batches received, by edge and outcome (stored, repeated, refused)",
                                    ["edge", "outcome"], registry=r)
        self.edge_readings = Counter("pumpwatch_edge_readings_total",
                                     "Readings received from each edge", ["edge"], registry=r)
        self.edge_alarms = Counter("pumpwatch_edge_alarm_events_total",
                                   "Alarm events forwarded by each edge, by outcome", ["edge", "outcome"],
                                   registry=r)

    @staticmethod
    def total(metric: MetricWrapperBase) -> float:
        """Sum of a counter or gauge over all its labels."""
        return sum(sample.value for family in metric.collect() for sample in family.samples
                   if not sample.name.endswith("_created"))

    def by_label(self, metric: MetricWrapperBase, label: str) -> dict[str, float]:
        """Current values of a labelled counter or gauge, by one label's value."""
        return {sample.labels[label]: sample.value for family in metric.collect()
                for sample in family.samples
                if label in sample.labels and not sample.name.endswith("_created")}
