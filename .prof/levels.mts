import { readFileSync } from 'node:fs';
import { Compressor } from 'zstd-napi';
import { dayEvents } from '../bench/day-events.ts';
import { encodeRecords } from '../src/store/codec.ts';
const dict = readFileSync('dictionaries/contrail-v1.zstd-dict');
const source = dayEvents({ repos: 1_000_000, seed: 1, firstTimeUs: Date.UTC(2026, 0, 1) * 1000, eventsPerSecond: 2000 });
const events = source.next(100_000);
events.forEach((e, i) => (e.seq = i + 1));
const json = events.reduce((s, e) => s + e.json.length, 0);
for (const blockSize of [1, 256, 1024]) {
  for (const level of [1, 3, 6]) {
    for (const useDict of [true]) {
      const c = new Compressor();
      c.setParameters({ compressionLevel: level });
      if (useDict) c.loadDictionary(dict);
      const cpu = process.cpuUsage();
      let out = 0;
      // group by collection within block as the store does
      for (let i = 0; i < events.length; i += blockSize) {
        const block = events.slice(i, i + blockSize);
        const parts = new Map<string, typeof block>();
        for (const e of block) { const k = e.collection ?? ''; (parts.get(k) ?? parts.set(k, []).get(k)!).push(e); }
        for (const p of parts.values()) out += blockSize === 1 ? c.compress(p[0].json).length : c.compress(encodeRecords(p)).length;
      }
      const u = process.cpuUsage(cpu);
      console.log(`block ${blockSize} level ${level} dict ${useDict}: ${(out / events.length).toFixed(1)} B/event (json ${(json / events.length).toFixed(0)}), ${((u.user + u.system) / events.length).toFixed(2)} cpu-µs/event`);
    }
  }
}
