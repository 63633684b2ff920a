import { redactUrl } from '../upstream/index.ts';

/** Credentials the NATS client sends to whichever server it connects to: its user/pass or token options. */
export type NatsAuth = { user: string; pass: string } | { token: string } | Record<string, never>;

export interface NatsServers {
  /** The URLs without their credentials, as the client is given them. */
  servers: string[];
  /** The URLs as logs and errors show them: credentials as *** (redactUrl). */
  shown: string[];
  auth: NatsAuth;
}

/**
 * --nats URLs as the NATS client takes them. A URL carries credentials as `user:password@` (or a
 * token as its user, `nats://token@host`), the way operators write them, but the client ignores
 * them there and is refused by a NATS that requires them: they go to its options instead, one set
 * for every server (the client offers it to whichever it connects to), so URLs that carry
 * different ones are refused. Nothing shown keeps them. config.ts calls it on the flag's value,
 * so a URL it refuses is a flag error, given before anything is opened.
 */
export function natsServers(urls: string[]): NatsServers {
  let auth: NatsAuth = {};
  const servers = urls.map((text) => {
    // The form alone lets through what URL cannot parse (a port past 65535, a ^ in the host).
    if (!/^(nats|tls):\/\/[^/\s]+$/.test(text) || !URL.canParse(text)) {
      throw new Error(`--nats: ${JSON.stringify(withoutCredentials(text))} is not a NATS server URL (nats://host:4222, nats://user:password@host:4222, or tls://…)`);
    }
    const url = new URL(text);
    if (url.username === '' && url.password === '') return text;
    const user = decodeURIComponent(url.username);
    const own: NatsAuth = url.password === '' ? { token: user } : { user, pass: decodeURIComponent(url.password) };
    if (Object.keys(auth).length > 0 && JSON.stringify(auth) !== JSON.stringify(own)) {
      throw new Error(`the --nats URLs carry different credentials (${urls.map(redactUrl).join(', ')}): the NATS client offers one set to every server, so give each URL the same, or only one of them`);
    }
    auth = own;
    url.username = '';
    url.password = '';
    return url.toString();
  });
  return { servers, shown: urls.map(redactUrl), auth };
}

/** A value as given, up to its last @ before the host masked: a URL that does not parse (or is not a URL) still shows what it names, never its credentials. */
function withoutCredentials(text: string): string {
  return text.replace(/^((?:[a-z][a-z0-9+.-]*:\/\/)?)[^/]*@/i, '$1***@');
}
