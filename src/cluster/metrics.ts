import { Counter, Gauge, type Registry } from 'prom-client';

export interface ClusterMetrics {
  leading: Gauge;
  terms: Counter;
  appliedSeq: Gauge;
  oversizedEvents: Counter;
}

export function createClusterMetrics(registry: Registry): ClusterMetrics {
  const registers = [registry];
  return {
    leading: new Gauge({ name: 'contrail_cluster_leader', help: '1 while this node holds the ingest lease and reads the relay', registers }),
    terms: new Counter({ name: 'contrail_cluster_leader_terms_total', help: 'Times this node became the ingest leader', registers }),
    appliedSeq: new Gauge({ name: 'contrail_cluster_stream_applied_seq', help: "The cluster stream's seq of the newest batch in this node's buffer", registers }),
    oversizedEvents: new Counter({
      name: 'contrail_cluster_oversized_events_dropped_total',
      help: "Events the leader dropped because even alone they exceed the NATS servers' max_payload",
      registers,
    }),
  };
}
