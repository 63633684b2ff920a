/**
 * Jetstream v2 frames from the test's side, written apart from src/server/v2-frames.ts: the
 * frame a v1 event should become, and the v1 event a v2 frame stands for.
 */
const NSID = 'network.bsky.jetstream.subscribeEvents';

/** RFC 3339, UTC, six fractional digits. */
export function timeOf(timeUs: number): string {
  const date = new Date(Math.floor(timeUs / 1000));
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return (
    `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}T` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}.${pad(timeUs % 1_000_000, 6)}Z`
  );
}

export function timeUsOf(time: string): number {
  const match = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})Z$/.exec(time);
  if (!match) throw new Error(`${time} is not RFC 3339 UTC with six fractional digits`);
  return (Date.parse(`${match[1]}Z`) / 1000) * 1_000_000 + Number(match[2]);
}

/** The exact v2 frame for a v1 event's JSON and its seq. */
export function v2Expected(v1Raw: string, seq: number): string {
  const { did, time_us, kind, ...rest } = JSON.parse(v1Raw);
  const body = kind === 'commit' ? rest.commit : { [kind]: rest[kind] };
  return JSON.stringify({ $type: 'message', payload: { $type: `${NSID}#${kind}`, seq, did, time: timeOf(time_us), ...body } });
}

/** The v1 event (parsed) a v2 message frame carries. */
export function v1FromV2(frame: string): Record<string, unknown> {
  const envelope = JSON.parse(frame);
  if (envelope.$type !== 'message') throw new Error(`not a message frame: ${frame}`);
  const { $type, seq, did, time, ...rest } = envelope.payload;
  if (!Number.isSafeInteger(seq)) throw new Error(`no seq in ${frame}`);
  const kind = $type.slice(`${NSID}#`.length);
  return { did, time_us: timeUsOf(time), kind, [kind]: kind === 'commit' ? rest : rest[kind] };
}
