/**
 * Compressed subscribers' frames (compression.ts): kept by sequence number in shared chunks, each
 * frame the same bytes as a frame of its own, and intact for whoever holds it after its chunk
 * grows or is dropped.
 */
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Decompressor } from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import type { Entry } from '../events/index.ts';
import { compressBound, EventCompressor } from './compression.ts';

const dictionary = new URL('../../dictionaries/contrail-v1.zstd-dict', import.meta.url).pathname;

function entry(seq: number): Entry {
  const did = `did:plc:${String(seq).padStart(24, 'a')}`;
  const json = Buffer.from(`{"did":"${did}","time_us":${1_700_000_000_000_000 + seq},"kind":"identity","identity":{"did":"${did}","handle":"h${seq}.test","seq":${seq}}}`);
  return { timeUs: 1_700_000_000_000_000 + seq, seq, did, kind: 'identity', collection: null, json };
}

test('an event is compressed once, its frame shared and the same bytes as a frame of its own; the Entry is left as it was', () => {
  const compressor = new EventCompressor(readFileSync(dictionary));
  const decompressor = new Decompressor();
  decompressor.loadDictionary(compressor.dictionary);
  const event = entry(1_000);
  const frame = compressor.compressed(event);
  assert.deepEqual(Buffer.from(frame), compressor.compress(event.json));
  assert.deepEqual(decompressor.decompress(frame), event.json);
  assert.equal(compressor.compressed(event), frame, 'the second subscriber gets the kept frame itself, not a view of its own');
  assert.deepEqual(Object.getOwnPropertySymbols(event), [], 'no frame is hung on the Entry');
  // Another store's event with the same sequence number (a test's second buffer) is its own.
  const other = { ...entry(2_000), seq: event.seq };
  assert.deepEqual(decompressor.decompress(compressor.compressed(other)), other.json);
  assert.deepEqual(decompressor.decompress(compressor.compressed(event)), event.json);
  // An entry that never went through a store has no sequence number: compressed each time, correctly.
  const { seq: _, ...unstored } = event;
  assert.deepEqual(Buffer.from(compressor.compressed(unstored)), Buffer.from(frame));
});

test('frames handed out stay intact while their chunk fills more buffers and after it is dropped', () => {
  const compressor = new EventCompressor(readFileSync(dictionary));
  const decompressor = new Decompressor();
  decompressor.loadDictionary(compressor.dictionary);
  const held: Array<[Entry, Uint8Array]> = [];
  let lastOfOldestKept: [Entry, Uint8Array] | undefined;
  // Well past the chunks kept (128 of 256 sequence numbers), every 97th frame held.
  for (let seq = 1; seq <= 64 * 1024; seq++) {
    const event = entry(seq);
    const frame = compressor.compressed(event);
    if (seq % 97 === 0) held.push([event, frame]);
    if (seq === 130 * 256 - 1) lastOfOldestKept = [event, frame];
  }
  for (const [event, frame] of held) assert.deepEqual(decompressor.decompress(frame), event.json, `seq ${event.seq}`);
  assert.equal(compressor.keptChunks, 128, 'the last 128 chunks are kept, no more');
  // The oldest chunk kept (sequence numbers 129 × 256 and on) still serves the frame it handed out last, not a new one.
  const [kept, keptFrame] = lastOfOldestKept!;
  assert.equal(compressor.compressed(kept), keptFrame);
  // A dropped chunk's event is compressed again, to the same bytes.
  const [oldest, oldFrame] = held[0]!;
  const remade = compressor.compressed(oldest);
  assert.notEqual(remade.buffer, oldFrame.buffer);
  assert.deepEqual(Buffer.from(remade), Buffer.from(oldFrame));
});

test("compressBound is the zstd library's for every length up to 256 KiB and at sizes past it", () => {
  const lengths = [...Array.from({ length: 256 * 1024 + 1 }, (_, i) => i), 1 << 20, 8 << 20, 100_000_000, 2 ** 31 - 1];
  for (const length of lengths) if (compressBound(length) !== binding.compressBound(length)) assert.fail(`length ${length}: ${compressBound(length)}, the library's ${binding.compressBound(length)}`);
});
