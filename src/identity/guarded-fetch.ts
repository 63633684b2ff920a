import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { checkEndpointUrl, guardedLookup } from './endpoint-guard.ts';

export interface GuardedRequestOptions {
  /** Let the URL reach loopback, private and link-local addresses (tests, private deployments). */
  allowPrivateEndpoints: boolean;
  /** Deadline for the whole exchange: connecting, the headers and reading the body. */
  timeoutMs: number;
  /** The socket may stay silent this long before the request fails (default: timeoutMs). */
  idleTimeoutMs?: number;
  /** Aborts the request (and the body stream) early. */
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

export class FetchTimeoutError extends Error {}

/**
 * GET for URLs that came from DID documents: the endpoint guard checks the URL and every
 * address its host resolves to, redirects are not followed (one could point anywhere), and the
 * deadline covers the body too. Resolves with the response as a stream once its headers are in,
 * whatever its status; the caller reads (and limits) the body.
 */
export async function getGuarded(target: string | URL, options: GuardedRequestOptions): Promise<IncomingMessage> {
  const url = checkEndpointUrl(target.toString(), options.allowPrivateEndpoints);
  const deadline = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.get(url, {
      headers: { accept: 'application/json', ...options.headers },
      signal,
      ...(options.allowPrivateEndpoints ? {} : { lookup: guardedLookup }),
    });
    request.setTimeout(options.idleTimeoutMs ?? options.timeoutMs, () => request.destroy(new FetchTimeoutError(`no data from ${url.host} for ${options.idleTimeoutMs ?? options.timeoutMs} ms`)));
    request.once('response', resolve);
    request.once('error', (err) => reject(deadline.aborted ? new FetchTimeoutError(`${url.host} did not answer within ${options.timeoutMs} ms`) : err));
  });
}

export class BodyTooLargeError extends Error {}

/** Reads a whole response body, failing (and closing the connection) past maxBytes. */
export async function readBodyLimited(response: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(response.headers['content-length']);
  if (declared > maxBytes) {
    response.destroy();
    throw new BodyTooLargeError(`response of ${declared} bytes exceeds the ${maxBytes}-byte limit`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > maxBytes) {
      response.destroy();
      throw new BodyTooLargeError(`response exceeds the ${maxBytes}-byte limit`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}
