/**
 * Which permessage-deflate offers the server takes (RFC 6455 §9.1's Sec-WebSocket-Extensions,
 * RFC 7692 §7's parameters). An offer is taken when it names `permessage-deflate` exactly and its
 * parameters are valid: known, each at most once, window sizes 8–15. RFC 7692 §7 says to decline
 * any other offer, never to refuse the upgrade for it. An offer with `server_max_window_bits` is
 * declined too: the deflate here always uses the full window (shared on the ws transport), and
 * accepting the parameter would mean answering with it.
 *
 * This is the one reading of the offer: routes.ts decides from it whether a connection gets
 * deflate (and takes a --max-deflate-subscribers slot; on v2, whether zstd beside it is a 400).
 * A transport does not hand the client's header to its WebSocket library, whose own reading of it
 * differs (`ws` refuses the upgrade over an invalid offer, uWS takes one): it hands
 * TAKEN_DEFLATE_OFFER where routes.ts granted deflate, or nothing, so both answer a taken offer
 * with the same extension, no context takeover both ways, as each library is configured.
 */
export const TAKEN_DEFLATE_OFFER = 'permessage-deflate';

/** Whether any offer in the Sec-WebSocket-Extensions header is one the server takes. */
export function takesDeflateOffer(header: string | undefined): boolean {
  const offers = splitOutsideQuotes(header ?? '', ',') ?? [];
  return offers.some(offerTaken);
}

const TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
/** `name`, `name=token` or `name="quoted"` (optional whitespace around `=`). */
const PARAMETER = new RegExp(`^(${TOKEN})(?:[ \\t]*=[ \\t]*(?:(${TOKEN})|"((?:[^"\\\\]|\\\\.)*)"))?$`);
const WINDOW_BITS = /^(?:[89]|1[0-5])$/;

function offerTaken(offer: string): boolean {
  // A comma split leaves each offer's quotes balanced.
  const [name, ...parameters] = splitOutsideQuotes(offer, ';') ?? [];
  if (name?.trim() !== TAKEN_DEFLATE_OFFER) return false;
  const seen = new Set<string>();
  for (const parameter of parameters) {
    const match = PARAMETER.exec(parameter.trim());
    if (!match) return false;
    const [, key = '', token, quoted] = match;
    if (seen.has(key)) return false;
    seen.add(key);
    // A quoted value must read as the unquoted one would (RFC 7692 §7.1.2).
    if (!parameterTaken(key, token ?? quoted?.replace(/\\(.)/g, '$1'))) return false;
  }
  return true;
}

function parameterTaken(key: string, value: string | undefined): boolean {
  switch (key) {
    case 'server_no_context_takeover':
    case 'client_no_context_takeover':
      return value === undefined;
    case 'client_max_window_bits':
      return value === undefined || WINDOW_BITS.test(value);
    default:
      // server_max_window_bits (see above), or a parameter RFC 7692 does not define.
      return false;
  }
}

/** Splits on `separator` outside double-quoted strings; undefined when a quote is left open. */
function splitOutsideQuotes(text: string, separator: ',' | ';'): string[] | undefined {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char === '\\') i++;
      else if (char === '"') quoted = false;
    } else if (char === '"') quoted = true;
    else if (char === separator) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted) return undefined;
  parts.push(text.slice(start));
  return parts;
}
