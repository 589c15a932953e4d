import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy the test controls, between Rotor and PostgreSQL.
 * - `up`: bytes flow both ways (after `latencyMs`, if set: a slow network).
 * - `reset`: every open connection is destroyed, and new ones are closed as soon as they arrive
 *   (the database host went away; a firewall rejects).
 * - `blackhole`: nothing flows any more, on open connections or new ones, and nothing is closed
 *   (packets dropped: only timeouts tell).
 */
export class TcpProxy {
  private mode: 'up' | 'reset' | 'blackhole' = 'up';
  /** Delay added to every chunk, each way, while up. */
  latencyMs = 0;
  private readonly sockets = new Set<Socket>();
  private readonly stalled = new Set<Socket>();
  private server: Server | null = null;
  port = 0;

  constructor(private readonly targetHost: string, private readonly targetPort: number) {}

  async start(): Promise<void> {
    this.server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    this.port = typeof address === 'object' && address ? address.port : 0;
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => { this.sockets.delete(socket); this.stalled.delete(socket); });
    socket.on('error', () => socket.destroy());
  }

  private forward(from: Socket, to: Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (this.stalled.has(from) || this.stalled.has(to)) return; // dropped on the floor
      if (this.latencyMs > 0) setTimeout(() => { if (!to.destroyed) to.write(chunk); }, this.latencyMs);
      else to.write(chunk);
    });
    from.on('close', () => to.destroy());
  }

  private accept(client: Socket): void {
    this.track(client);
    if (this.mode === 'reset') {
      client.destroy();
      return;
    }
    if (this.mode === 'blackhole') {
      this.stalled.add(client);
      return;
    }
    const upstream = connect(this.targetPort, this.targetHost);
    this.track(upstream);
    this.forward(client, upstream);
    this.forward(upstream, client);
  }

  /** From now on, the database is unreachable in the given way. */
  cut(mode: 'reset' | 'blackhole'): void {
    this.mode = mode;
    for (const socket of this.sockets) {
      if (mode === 'reset') socket.destroy();
      else this.stalled.add(socket);
    }
  }

  /** The database is reachable again. Connections stalled meanwhile are dropped, as a real network would time them out. */
  restore(): void {
    this.mode = 'up';
    this.latencyMs = 0;
    for (const socket of this.stalled) socket.destroy();
    this.stalled.clear();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
