import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { RotorError } from '../domain/errors.js';

/**
 * Requests pipelined on one connection. HTTP/1.1 lets a client send many before reading an answer, and
 * Node parses and hands over every one it receives however many are unanswered: one connection could
 * queue hundreds of thousands (their memory, and a backlog every other client waits behind), which no
 * limit further in (the DPoP verifier's, a session's) can bound. Browsers do not pipeline; a library
 * that does keeps a few in flight. A connection with more than 64 unanswered requests is closed: those
 * not yet handled are dropped, unanswered.
 */
export const MAX_IN_FLIGHT_PER_CONNECTION = 64;

const IN_FLIGHT = Symbol('rotor.requestsInFlight');
type CountedSocket = Socket & { [IN_FLIGHT]?: number };

export function limitPipelining(app: FastifyInstance, onClose: () => void): void {
  app.addHook('onRequest', (request, _reply, done) => {
    const socket = request.raw.socket as CountedSocket;
    const inFlight = (socket[IN_FLIGHT] ?? 0) + 1;
    socket[IN_FLIGHT] = inFlight;
    if (inFlight <= MAX_IN_FLIGHT_PER_CONNECTION) return done();
    if (!socket.destroyed) {
      onClose();
      socket.destroy();
    }
    // The request's own chain ends here (nobody can read its answer).
    done(new RotorError('server_busy', 'too many requests pipelined on one connection'));
  });
  app.addHook('onResponse', (request, _reply, done) => {
    const socket = request.raw.socket as CountedSocket;
    socket[IN_FLIGHT] = (socket[IN_FLIGHT] ?? 1) - 1;
    done();
  });
}
