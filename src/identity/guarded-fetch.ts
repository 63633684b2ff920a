import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { checkEndpointUrl, guardedLookup } from './endpoint-guard.ts';

export interface GuardedRequestOptions {
  /** Let the URL reach loopback, private and link-local addresses (tests, private deployments). */
  allowPrivateEndpoints: boolean;
  /** Deadline for the whole exchange: connecting, the headers and reading the body. */
  timeoutMs: number;
  /** That deadline's timer, for a caller that must know whether it passed (default: one started here). */
  deadline?: AbortSignal;
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
  const deadline = options.deadline ?? AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
  const client = url.protocol === 'https:' ? https : http;
  const idleMs = options.idleTimeoutMs ?? options.timeoutMs;
  return new Promise((resolve, reject) => {
    const request = client.get(url, {
      headers: { accept: 'application/json', ...options.headers },
      signal,
      ...(options.allowPrivateEndpoints ? {} : { lookup: guardedLookup }),
    });
    let response: IncomingMessage | undefined;
    // Both timeouts cover the body too. Destroying the request resets the socket, which fails a body
    // still being read with "aborted" on the next tick: it fails with the timeout first.
    const timedOut = (error: FetchTimeoutError) => {
      if (response && !response.complete) response.destroy(error);
    };
    request.setTimeout(idleMs, () => {
      const error = new FetchTimeoutError(`no data from ${url.host} for ${idleMs} ms`);
      timedOut(error);
      request.destroy(error);
    });
    const onDeadline = () => timedOut(new FetchTimeoutError(`${url.host} did not send its answer within ${options.timeoutMs} ms`));
    deadline.addEventListener('abort', onDeadline, { once: true });
    request.once('close', () => deadline.removeEventListener('abort', onDeadline));
    request.once('response', (answer) => resolve((response = answer)));
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
