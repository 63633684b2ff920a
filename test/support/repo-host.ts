/**
 * A PDS's com.atproto.sync answers for SignedRepos, as the PDS gives them: getRepo (the whole repo
 * as a CAR, the PDS's own writer), getLatestCommit (its commit's CID and rev) and getBlocks (the
 * blocks named, as a CAR naming no root), with the PDS's XRPC errors for a repo or block it does
 * not have and for any other method.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SignedRepo } from './signed-repo.ts';

/** The sync method a request to a PDS asks for (`com.atproto.sync.getRepo`). */
export function syncMethodOf(req: IncomingMessage): string {
  return new URL(req.url!, 'http://pds').pathname.replace('/xrpc/', '');
}

export async function answerSync(req: IncomingMessage, res: ServerResponse, repoOf: (did: string) => SignedRepo | undefined): Promise<void> {
  const url = new URL(req.url!, 'http://pds');
  const xrpcError = (status: number, error: string, message: string) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error, message }));
  const did = url.searchParams.get('did') ?? '';
  const repo = repoOf(did);
  const method = syncMethodOf(req);
  if (!['com.atproto.sync.getRepo', 'com.atproto.sync.getLatestCommit', 'com.atproto.sync.getBlocks'].includes(method)) return void xrpcError(501, 'MethodNotImplemented', `Method Not Implemented: ${method}`);
  if (!repo) return void xrpcError(400, 'RepoNotFound', `Could not find repo for DID: ${did}`);
  if (method === 'com.atproto.sync.getLatestCommit') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(repo.latestCommit));
  if (method === 'com.atproto.sync.getBlocks') {
    const cids = url.searchParams.getAll('cids');
    const car = await repo.blocks(cids);
    if (!car) return void xrpcError(400, 'InvalidRequest', `Could not find cids: ${cids.join(',')}`);
    return void res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' }).end(car);
  }
  res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' });
  for await (const chunk of repo.car()) res.write(chunk);
  res.end();
}
