/** The server suites run once per transport; uWS is skipped (with the reason) where it has no build. */
import { loadUws } from '../../src/server/uws-transport.ts';

export interface TransportUnderTest {
  transport: 'uws' | 'ws';
  /** Set when this transport cannot run here. */
  skip?: string;
}

export async function transportsUnderTest(): Promise<TransportUnderTest[]> {
  const uws = await loadUws();
  return [
    { transport: 'uws', skip: 'unavailable' in uws ? `uWebSockets.js cannot run here: ${uws.unavailable}` : undefined },
    { transport: 'ws' },
  ];
}
