import { createServer } from 'node:net';

/**
 * Why a port could not be taken, in an operator's words. uWS only says "no", so it is asked of
 * the kernel again through node:net. Both transports listen exclusively: uWS would otherwise share
 * the port with another contrail through SO_REUSEPORT and the kernel would split clients between them.
 */
export function listenError(flag: string, host: string, port: number, cause: NodeJS.ErrnoException): Error {
  if (cause.code === 'EADDRINUSE') {
    return new Error(`${host}:${port} is already in use (another contrail, or another program): stop it or choose another ${flag}`);
  }
  if (cause.code === 'EADDRNOTAVAIL') return new Error(`${host} is not an address of this machine (${flag.replace('port', 'host')})`);
  return new Error(`cannot listen on ${host}:${port}: ${cause.message}`);
}

/** Binds host:port with node:net and lets go at once, to learn why another server could not. */
export function probeListen(host: string, port: number): Promise<NodeJS.ErrnoException> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(Object.assign(new Error('the address was free a moment later'), { code: 'EAGAIN' }))));
  });
}
