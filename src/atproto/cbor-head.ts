/**
 * The head of a CBOR item (RFC 8949 §3): its major type and its argument — a length, a count or
 * an integer — as DAG-CBOR allows it (shortest form, definite lengths), for the readers that walk
 * DAG-CBOR bytes themselves (dag-cbor-reader.ts, events' record-bytes.ts).
 */
export const MAJOR_UINT = 0;
export const MAJOR_NEGINT = 1;
export const MAJOR_BYTES = 2;
export const MAJOR_STRING = 3;
export const MAJOR_ARRAY = 4;
export const MAJOR_MAP = 5;
export const MAJOR_TAG = 6;

const TWO_32 = 2 ** 32;

/** Bytes of the head that starts with `initial` (for heads whose argument readArgument accepted). */
export function headLength(initial: number): number {
  const info = initial & 31;
  return info < 24 ? 1 : 1 + 2 ** (info - 24);
}

/**
 * The argument of the head at `at`; -1 when it is not in shortest form, not below 2^53 (cborg
 * makes a BigInt of those), indefinite, reserved, or cut short by the end of `data`.
 */
export function readArgument(data: Uint8Array, at: number): number {
  const info = data[at]! & 31;
  if (info < 24) return info;
  switch (info) {
    case 24: {
      const value = data[at + 1] ?? -1;
      return value >= 24 ? value : -1;
    }
    case 25: {
      if (at + 3 > data.length) return -1;
      const value = (data[at + 1]! << 8) | data[at + 2]!;
      return value >= 0x100 ? value : -1;
    }
    case 26: {
      if (at + 5 > data.length) return -1;
      const value = uint32At(data, at + 1);
      return value >= 0x10000 ? value : -1;
    }
    case 27: {
      if (at + 9 > data.length) return -1;
      const value = uint32At(data, at + 1) * TWO_32 + uint32At(data, at + 5);
      return value >= TWO_32 && value <= Number.MAX_SAFE_INTEGER ? value : -1;
    }
    default:
      return -1;
  }
}

function uint32At(data: Uint8Array, at: number): number {
  return data[at]! * 0x1000000 + ((data[at + 1]! << 16) | (data[at + 2]! << 8) | data[at + 3]!);
}
