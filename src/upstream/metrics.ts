import { Counter, Gauge, type Registry } from 'prom-client';

export type UpstreamMetrics = ReturnType<typeof createUpstreamMetrics>;

export function createUpstreamMetrics(registry: Registry) {
  const registers = [registry];
  return {
    connects: new Counter({ name: 'contrail_upstream_connects_total', help: 'Upstream connections opened', registers }),
    disconnects: new Counter({
      name: 'contrail_upstream_disconnects_total',
      help: 'Upstream connections lost, by reason',
      labelNames: ['reason'],
      registers,
    }),
    connected: new Gauge({ name: 'contrail_upstream_connected', help: '1 while the upstream socket is open', registers }),
    frames: new Counter({
      name: 'contrail_upstream_frames_total',
      help: 'Upstream frames decoded, by message type',
      labelNames: ['type'],
      registers,
    }),
    bytes: new Counter({ name: 'contrail_upstream_bytes_total', help: 'Upstream frame bytes received', registers }),
    errorFrames: new Counter({
      name: 'contrail_upstream_error_frames_total',
      help: 'Upstream error frames (op -1), by error name',
      labelNames: ['error'],
      registers,
    }),
    drops: new Counter({
      name: 'contrail_ingest_drops_total',
      help: 'Upstream frames or commit ops dropped, by reason',
      labelNames: ['reason'],
      registers,
    }),
  };
}
