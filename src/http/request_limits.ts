import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { serverBusy } from '../domain/errors.js';

/**
 * Requests in hand. HTTP/1.1 lets a client pipeline many requests before reading an answer, and Node
 * parses and hands over every one it receives however many are unanswered: one connection could queue
 * hundreds of thousands (their memory, and a backlog every other client waits behind), which no limit
 * further in (the DPoP verifier's, a session's) can bound. Browsers do not pipeline; a library that does
 * keeps a few in flight. A connection with more than 64 unanswered requests is closed: the requests
 * before are answered, the rest 503 (or dropped, if it sends twice as many before that). And past 4,096 requests in hand across all connections, more are
 * answered 503 server_busy at once, before their body is read: under a flood of connections a client is
 * told to retry shortly, where it would otherwise wait past its timeout while its refresh, made late,
 * consumes its token without an answer reaching it.
 */
export const requestLimits = { perConnection: 64, total: 4096 };

const IN_FLIGHT = Symbol('rotor.requestsInFlight');
const CLOSED = Symbol('rotor.socketClosed');
const SOCKET = Symbol('rotor.requestSocket');
type CountedSocket = Socket & { [IN_FLIGHT]?: number; [CLOSED]?: boolean };
type CountedResponse = ServerResponse & { [SOCKET]?: CountedSocket };

let inFlight = 0;

/** Requests in hand in this process (a test's check that every one is let go). */
export const requestsInFlight = (): number => inFlight;

/** A response closed (answered, or its client gone): its place is given back, unless its socket's were. */
function responseClosed(this: CountedResponse): void {
  const socket = this[SOCKET];
  if (!socket || socket[CLOSED]) return;
  socket[IN_FLIGHT] = (socket[IN_FLIGHT] ?? 1) - 1;
  inFlight -= 1;
}

/** A connection closed: every place it still held is given back (a pipelined response queued behind others never closes). */
function socketClosed(this: CountedSocket): void {
  this[CLOSED] = true;
  inFlight -= this[IN_FLIGHT] ?? 0;
  this[IN_FLIGHT] = 0;
}

export function limitRequestsInFlight(app: FastifyInstance, onConnectionClosed: () => void): void {
  app.addHook('onRequest', (request, reply, done) => {
    const socket = request.raw.socket as CountedSocket;
    if (socket[IN_FLIGHT] === undefined) socket.once('close', socketClosed);
    const onSocket = (socket[IN_FLIGHT] ?? 0) + 1;
    if (!socket[CLOSED]) {
      socket[IN_FLIGHT] = onSocket;
      inFlight += 1;
      const res = reply.raw as CountedResponse;
      res[SOCKET] = socket;
      res.once('close', responseClosed);
    }
    if (onSocket > requestLimits.perConnection) {
      // The connection is closed once the requests before this one are answered (each its own answer,
      // in order, then this 503), or at once if it goes on sending twice as many meanwhile.
      if (onSocket === requestLimits.perConnection + 1) onConnectionClosed();
      if (onSocket > 2 * requestLimits.perConnection && !socket.destroyed) socket.destroy();
      void reply.header('Connection', 'close');
      return done(serverBusy('too many requests pipelined on one connection'));
    }
    if (inFlight > requestLimits.total) return done(serverBusy('the server has too many requests in hand; retry shortly'));
    done();
  });
}
