import { createServer, connect, type Server, type Socket } from 'node:net';

/** PostgreSQL's ReadyForQuery message ('Z', length 5), which ends every reply. */
const READY_FOR_QUERY = Buffer.from([0x5a, 0, 0, 0, 5]);

/**
 * A TCP proxy the test controls, between Rotor and PostgreSQL.
 * - `up`: bytes flow both ways (after `latencyMs`, if set: a slow network).
 * - `reset`: every open connection is destroyed, and new ones are closed as soon as they arrive
 *   (the database host went away; a firewall rejects).
 * - `blackhole`: nothing flows any more, on open connections or new ones, and nothing is closed
 *   (packets dropped: only timeouts tell).
 * - `loseAnswerTo`: one statement's reply is lost (or its request), then its connection is reset.
 * - `holdRequestTo`: one statement is held on its way, its client's connection reset; released later,
 *   it reaches the server on the connection the server still has open (a delayed packet).
 */
export class TcpProxy {
  private mode: 'up' | 'reset' | 'blackhole' = 'up';
  /** Delay added to every chunk, each way, while up. */
  latencyMs = 0;
  private readonly sockets = new Set<Socket>();
  private readonly stalled = new Set<Socket>();
  /** Upstream (server-side) sockets, each with its client. */
  private readonly peers = new Map<Socket, Socket>();
  /** Upstream sockets whose replies are being dropped, with what to do once the reply is complete. */
  private readonly losing = new Map<Socket, () => void>();
  private armed: { match: Buffer; request: boolean; then: 'up' | 'reset'; done: () => void } | null = null;
  private holding: { match: Buffer; done: (release: () => Promise<void>) => void } | null = null;
  /** Upstream sockets whose client is gone while a held statement waits to reach them. */
  private readonly held = new Set<Socket>();
  /** Held upstream sockets whose statement was sent on: told when the server has answered it. */
  private readonly answered = new Map<Socket, () => void>();
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
      if (this.held.has(from)) {
        // The server's reply to a held statement: no client to take it; its end tells the statement ran.
        if (chunk.includes(READY_FOR_QUERY)) this.answered.get(from)?.();
        return;
      }
      if (this.losing.has(from)) {
        // A server reply ends with ReadyForQuery ('Z', length 5): by then the statement has committed.
        if (chunk.includes(READY_FOR_QUERY)) this.losing.get(from)!();
        return;
      }
      const holding = this.holding;
      if (holding && this.peers.has(to) && chunk.includes(holding.match)) {
        this.holding = null;
        this.held.add(to);
        from.destroy();
        holding.done(() => new Promise((ran) => {
          this.answered.set(to, () => {
            this.answered.delete(to);
            this.held.delete(to);
            to.destroy();
            ran();
          });
          to.write(chunk);
        }));
        return;
      }
      const armed = this.armed;
      if (armed && this.peers.has(to) && chunk.includes(armed.match)) { // Rotor's bytes to the server
        this.armed = null;
        const lose = () => {
          this.losing.delete(to);
          from.destroy();
          to.destroy();
          if (armed.then === 'reset') this.cut('reset');
          armed.done();
        };
        if (armed.request) return lose(); // never reaches the server
        this.losing.set(to, lose);
      }
      if (this.latencyMs > 0) setTimeout(() => { if (!to.destroyed) to.write(chunk); }, this.latencyMs);
      else to.write(chunk);
    });
    from.on('close', () => { if (!this.held.has(to)) to.destroy(); });
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
    this.peers.set(upstream, client);
    upstream.on('close', () => { this.peers.delete(upstream); this.losing.delete(upstream); });
    this.forward(client, upstream);
    this.forward(upstream, client);
  }

  /**
   * The next chunk from a client that contains `match` (a prepared statement's name, say
   * `rotor_rotate_session\0`, which its Parse and every Bind carry) reaches the server, but the server's
   * reply is dropped up to its ReadyForQuery, and then both sockets are reset: the statement committed and
   * its client sees a broken connection. `request`: the chunk itself is dropped instead (nothing ran).
   * `then: 'reset'`: afterwards the database stays unreachable until `restore`. Resolves once it happened.
   */
  loseAnswerTo(match: string, options: { request?: boolean; then?: 'up' | 'reset' } = {}): Promise<void> {
    return new Promise((done) => {
      this.armed = { match: Buffer.from(match), request: options.request ?? false, then: options.then ?? 'up', done };
    });
  }

  /**
   * The next chunk from a client that contains `match` is kept from the server, and that client's
   * connection is reset at once (it sees a broken connection, its statement's outcome unknown), while
   * the server's side stays open. Resolves, once that happened, with the function that sends the chunk
   * on: the statement then runs, late, as a delayed packet would make it; its reply goes nowhere, and
   * the function's promise resolves when the server has sent it (the statement ran).
   */
  holdRequestTo(match: string): Promise<() => Promise<void>> {
    return new Promise((done) => {
      this.holding = { match: Buffer.from(match), done };
    });
  }

  /** True while a `loseAnswerTo` has not happened yet. */
  get armedToLose(): boolean {
    return this.armed !== null;
  }

  /** Forgets a `loseAnswerTo` that has not happened. */
  disarm(): void {
    this.armed = null;
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
    this.held.clear();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
