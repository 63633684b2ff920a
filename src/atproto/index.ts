/**
 * Package atproto holds the AT Protocol primitives every stage may use: identifier syntax, CID
 * links kept as bytes, and the DAG-CBOR tokenizer that reads byte strings as views. It is not a
 * stage of the data path — it imports none of them — so upstream can verify frames with it,
 * events can transcode records with it and server can check filters with it, each through
 * this one entry point.
 *
 * Files:
 *   syntax.ts  DID, handle, NSID, record key and TID syntax (checked against the interop vectors); a TID's time, and how far ahead a rev may run
 *   link.ts    Link: a CID as its binary bytes; the tag-42 decoder that makes one
 *   base32.ts  writeBase32 / base32Multibase: CIDv1 text (multibase `b`), written as bytes
 *   cbor.ts    ViewTokenizer / ViewDecoder: cborg's tokenizer with byte strings as views
 *   cbor-head.ts  readArgument, headLength, MAJOR_*: a CBOR item's head in DAG-CBOR's shortest form
 *   dag-cbor-reader.ts  readDagCbor: the shapes frames are made of, read without cborg (the ViewDecoder decides the rest)
 */
export { FUTURE_REV_TOLERANCE_MS, isDid, isHandle, isNsid, isRecordKey, isTid, tidMicros } from './syntax.ts';
export { Link, decodeLinkTag } from './link.ts';
export { ViewDecoder, ViewTokenizer } from './cbor.ts';
export { readDagCbor } from './dag-cbor-reader.ts';
export { headLength, MAJOR_ARRAY, MAJOR_BYTES, MAJOR_MAP, MAJOR_NEGINT, MAJOR_STRING, MAJOR_TAG, MAJOR_UINT, readArgument } from './cbor-head.ts';
export { base32Length, base32Multibase, writeBase32 } from './base32.ts';
