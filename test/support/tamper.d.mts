// Types for tamper.mjs (plain JavaScript so the end-to-end suite, which runs without tsx, shares it).
import type { CommitBody } from './signed-repo.ts';

export function withBadSignature(body: CommitBody): Promise<CommitBody>;
export function withWrongPrevData(body: CommitBody): CommitBody;
export function withMissingProofNode(body: CommitBody): CommitBody;
export function withWrongRev(body: CommitBody): CommitBody;
export function withoutPrev(body: CommitBody): CommitBody;
export function encodeCommitFrame(body: CommitBody): Uint8Array;
export function decodeFrame(bytes: Uint8Array): { header: { op: number; t?: string }; body: any };
