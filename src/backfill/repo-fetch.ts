import type { IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { RefusedEndpointError, checkEndpointUrl, getGuarded, retryAfter } from '../identity/index.ts';
import { BackfillFailure } from './failure.ts';

export interface FetchLimits {
  /** Bytes of CAR read at most (the Content-Length is checked first when there is one). */
  maxBytes: number;
  /** One attempt, from request to the last byte read and parsed. */
  timeoutMs: number;
  /** Attempts in all, for failures worth retrying (network errors, timeouts, 429, 5xx). */
  attempts: number;
  /** The first retry waits about this long, doubling after each (with jitter). */
  backoffMs: number;
  /** A Retry-After longer than this ends the backfill instead of waiting. */
  maxRetryAfterMs: number;
  allowPrivateEndpoints: boolean;
}

/** What a fetch asks a PDS for (`com.atproto.sync.getRepo` and its `did`, as a CAR), and what it is called in errors ("the repo"). */
export interface SyncRequest {
  method: string;
  params: Record<string, string>;
  accept: 'application/vnd.ipld.car' | 'application/json';
  what: string;
}

/** `GET {pds}/xrpc/com.atproto.sync.getRepo?did=…`, as fetchSync fetches it. */
export function fetchRepo<T>(pdsUrl: string, did: string, limits: FetchLimits, read: (chunks: AsyncIterable<Uint8Array>) => Promise<T>, signal?: AbortSignal): Promise<T> {
  return fetchSync(pdsUrl, { method: 'com.atproto.sync.getRepo', params: { did }, accept: 'application/vnd.ipld.car', what: 'the repo' }, limits, read, signal);
}

/**
 * `GET {pds}/xrpc/{method}?{params}` as a byte stream handed to `read`, which runs inside the
 * attempt: its time counts against the attempt's deadline and a stream that breaks or overruns
 * ends it. Failures the PDS states (RepoNotFound, RepoTakendown, …) end at once with their own
 * reason; network errors, timeouts, 429 and 5xx are retried with backoff, honouring
 * Retry-After. The request goes through the identity stage's endpoint guard: the endpoint came
 * from a DID document, which anyone can write.
 */
export async function fetchSync<T>(pdsUrl: string, request: SyncRequest, limits: FetchLimits, read: (chunks: AsyncIterable<Uint8Array>) => Promise<T>, signal?: AbortSignal): Promise<T> {
  let url: URL;
  try {
    url = new URL(`/xrpc/${request.method}`, checkEndpointUrl(pdsUrl, limits.allowPrivateEndpoints));
  } catch (err) {
    throw new BackfillFailure('private_endpoint', `the PDS endpoint ${pdsUrl} is refused: ${(err as Error).message}`);
  }
  for (const [name, value] of Object.entries(request.params)) url.searchParams.set(name, value);
  for (let attempt = 1; ; attempt++) {
    let retryAfterMs: number | undefined;
    try {
      return await attemptFetch(url, request, limits, read, signal);
    } catch (err) {
      if (!(err instanceof RetryableFailure) || attempt >= limits.attempts || signal?.aborted) throw unwrap(err);
      retryAfterMs = err.retryAfterMs;
      if (retryAfterMs !== undefined && retryAfterMs > limits.maxRetryAfterMs) {
        throw new BackfillFailure('fetch_failed', `${err.failure.message}; it asks to wait ${Math.ceil(retryAfterMs / 1000)} s, more than this gateway waits`);
      }
    }
    const backoff = limits.backoffMs * 2 ** (attempt - 1) * (0.5 + Math.random());
    await sleep(Math.max(backoff, retryAfterMs ?? 0), undefined, { signal }).catch(() => {});
  }
}

/**
 * The PDS does not serve the method asked for (501, or the XRPC error MethodNotImplemented):
 * asking again will not help; a caller with another way to the same data may take it.
 */
export class MethodNotImplemented extends BackfillFailure {
  constructor(message: string) {
    super('fetch_failed', message);
  }
}

/** A failure worth another attempt; `failure` is what is reported if none is left. */
class RetryableFailure extends Error {
  constructor(
    readonly failure: BackfillFailure,
    readonly retryAfterMs?: number,
  ) {
    super(failure.message);
  }
}

function unwrap(err: unknown): unknown {
  return err instanceof RetryableFailure ? err.failure : err;
}

async function attemptFetch<T>(url: URL, { accept, what }: SyncRequest, limits: FetchLimits, read: (chunks: AsyncIterable<Uint8Array>) => Promise<T>, signal?: AbortSignal): Promise<T> {
  // The attempt's deadline is asked whether it passed, not judged from two wall-clock readings,
  // which a clock step (or a reading a millisecond short of the timer) gets wrong.
  const deadline = AbortSignal.timeout(limits.timeoutMs);
  try {
    const response = await getGuarded(url, {
      allowPrivateEndpoints: limits.allowPrivateEndpoints,
      timeoutMs: limits.timeoutMs,
      deadline,
      signal,
      headers: { accept, 'user-agent': 'contrail (backfill)' },
    });
    await checkStatus(response, url, what, limits);
    return await read(limitedBody(response, what, limits.maxBytes));
  } catch (err) {
    // The guard's deadline covers the body too: whatever broke once it passed, it was the deadline.
    if (deadline.aborted) {
      throw new RetryableFailure(new BackfillFailure('timeout', `${url.host} did not send ${what} within ${limits.timeoutMs / 1000} s`));
    }
    if (signal?.aborted) throw new BackfillFailure('fetch_failed', 'cancelled: no subscriber waits for it any more');
    if (err instanceof BackfillFailure || err instanceof RetryableFailure) throw err;
    if (err instanceof RefusedEndpointError || (err as { cause?: unknown }).cause instanceof RefusedEndpointError) {
      throw new BackfillFailure('private_endpoint', `the PDS endpoint is refused: ${(err as Error).message}`);
    }
    throw new RetryableFailure(new BackfillFailure('fetch_failed', `could not fetch ${what} from ${url.host}: ${(err as Error).message}`));
  }
}

const XRPC_FAILURES: Record<string, BackfillFailure['reason']> = {
  RepoNotFound: 'repo_not_found',
  RepoTakendown: 'repo_takendown',
  RepoSuspended: 'repo_suspended',
  RepoDeactivated: 'repo_deactivated',
  BlockNotFound: 'missing_block',
};

async function checkStatus(response: IncomingMessage, url: URL, what: string, limits: FetchLimits): Promise<void> {
  const status = response.statusCode ?? 0;
  if (status === 200) {
    const length = Number(response.headers['content-length']);
    if (length > limits.maxBytes) {
      response.destroy();
      throw new BackfillFailure('too_large', `${what} is ${length} bytes, over this gateway's limit of ${limits.maxBytes}`);
    }
    return;
  }
  const { error, message } = await readXrpcError(response);
  const said = `${url.host} answered ${status}${error ? ` ${error}` : ''}${message ? `: ${message}` : ''}`;
  if (status === 501 || error === 'MethodNotImplemented') throw new MethodNotImplemented(said);
  const reason = (error && XRPC_FAILURES[error]) || (status === 404 ? 'repo_not_found' : undefined);
  if (reason) throw new BackfillFailure(reason, said);
  if (status === 429 || status === 503) throw new RetryableFailure(new BackfillFailure('fetch_failed', said), retryAfter(response.headers['retry-after']));
  if (status >= 500) throw new RetryableFailure(new BackfillFailure('fetch_failed', said));
  throw new BackfillFailure('fetch_failed', said);
}

/** An XRPC error body `{"error","message"}`, read up to 64 KiB; anything else gives nothing. */
async function readXrpcError(response: IncomingMessage): Promise<{ error?: string; message?: string }> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response) {
      size += chunk.length;
      if (size > 65_536) break;
      chunks.push(chunk);
    }
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return {
      error: typeof body.error === 'string' ? body.error.slice(0, 100) : undefined,
      message: typeof body.message === 'string' ? body.message.slice(0, 300) : undefined,
    };
  } catch {
    return {};
  } finally {
    response.destroy();
  }
}

async function* limitedBody(response: IncomingMessage, what: string, maxBytes: number): AsyncIterable<Uint8Array> {
  let size = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new BackfillFailure('too_large', `${what} is over this gateway's limit of ${maxBytes} bytes`);
    yield chunk;
  }
}
