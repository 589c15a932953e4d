import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import type { Config } from '../config.js';
import type { Rotor } from '../domain/rotor.js';
import { proofVerifier } from '../crypto/proof_verifier.js';
import { adminApi, guardAdminRoutes } from './admin/routes.js';
import { problemBody, sendProblem } from './reply.js';
import { RotorError } from '../domain/errors.js';
import { consoleApi } from './console/routes.js';
import { answeredBusy, type Api, type ApiContext, registerApi } from './api.js';
import { nativeApi } from './native/routes.js';
import { oauth2Api } from './oauth2/routes.js';
import type { Metrics } from './observability.js';
import { opsApi } from './ops/routes.js';
import { registerFallbacks } from './fallbacks.js';
import { trackRoutes } from './method_not_allowed.js';
import { refuseHeadOnClassedRoutes } from './head_routes.js';
import { CORE_ROUTE_CLASSES, RateLimiter } from './rate_limit.js';
import type { DialectHttp } from './dialect.js';
import { registerCors } from './cors.js';
import { refuseForeignCharsets } from './charset.js';
import { sdkApi } from './sdk.js';
import { limitRequestsInFlight } from './request_limits.js';
import { pathOfTarget } from './target.js';
import { RouteApis } from './route_apis.js';

/** The core's APIs; the dialects' follow them, from the list `buildServer` is handed (src/dialects/index.ts). */
export const CORE_APIS: readonly Api[] = [opsApi, sdkApi, nativeApi, oauth2Api, adminApi, consoleApi];

export const BODY_LIMIT = 64 * 1024;

/**
 * Slow clients (SECURITY-CASES H-03, slowloris). A request's headers must arrive within 10 s and the
 * whole request (headers and a body of at most BODY_LIMIT) within 15 s, or the socket is answered 408
 * and closed; a socket idle for 30 s is closed. Node checks these every second (its default is every
 * 30 s, which would let a dribbling socket live up to 45 s). Receiving only: handling time is not counted.
 */
export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 15_000;
const IDLE_SOCKET_TIMEOUT_MS = 30_000;
const TIMEOUT_CHECK_EVERY_MS = 1_000;

/** pathOfTarget lives in target.ts (CORS classifies preflights by it too); re-exported for its importers. */
export { pathOfTarget };

/** Log lines carry the path only: a query string (or an absolute target's userinfo) could hold something secret. */
const requestSerializer = (req: { method?: string; url?: string; id?: string }) => ({
  id: req.id, method: req.method, path: pathOfTarget(req.url ?? ''),
});

/**
 * Errors as pino writes them, less Node's `rawPacket` (a client error carries the raw request bytes,
 * `Authorization` header and all: fastify logs it at trace level).
 */
function errorSerializer(err: Error): Record<string, unknown> {
  const out = pino.stdSerializers.err(err) as unknown as Record<string, unknown>;
  delete out.rawPacket;
  return out;
}

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const options = {
    level,
    serializers: { req: requestSerializer, err: errorSerializer },
    redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.password', '*.token', '*.refreshToken'], censor: '[redacted]' },
  };
  return destination ? pino(options, destination as pino.DestinationStream) : pino(options);
}

export interface BuildServerInput {
  rotor: Rotor;
  config: Config;
  metrics: Metrics;
  logger: Logger;
  /** The dialects to speak besides the core's APIs: `DIALECTS.map((d) => d.http)` (src/dialects/index.ts). */
  dialects: readonly DialectHttp[];
}

/**
 * What Node's parser refused before any route was known (oversized headers, smuggling, bad chunks,
 * headers too slow): a problem body in Rotor's catalogue rather than fastify's own, then the socket closes.
 * No API is known yet, so no dialect envelope can be chosen; nothing of the request is echoed.
 */
function answerClientError(logger: Logger, err: Error & { code?: string }, socket: Duplex): void {
  // Only the parser's code: Node's error carries the raw bytes (`rawPacket`), headers and all (S2-19).
  logger.trace({ code: err.code }, 'client error');
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason, detail] = err.code === 'HPE_HEADER_OVERFLOW'
    ? [431, 'Request Header Fields Too Large', 'the request headers are too large']
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'Request Timeout', 'the request took too long to arrive']
      : [400, 'Bad Request', 'the request is not valid HTTP/1.1'];
  answerOnSocket(socket, 'invalid_request', status, reason, detail);
}

/** A problem body written straight to the socket, which then closes: for answers given before fastify sees the request. */
function answerOnSocket(socket: Duplex, code: string, status: number, reason: string, detail: string): void {
  const body = problemBody(code, status, detail);
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/problem+json; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

/**
 * Two requests Node answers itself, outside fastify: an `Expect` other than 100-continue (a bare 417 with
 * no body) and a CONNECT (the socket closed without a word). Both get a problem body of the catalogue
 * instead, and the connection closes (a body may follow such a request). Nothing of the request is echoed.
 */
function answerNodesOwnRefusals(app: FastifyInstance): void {
  app.server.on('checkExpectation', (_request, response: ServerResponse) => {
    const body = problemBody('invalid_request', 417, 'only Expect: 100-continue is understood');
    response.shouldKeepAlive = false;
    response.writeHead(417, { 'Content-Type': 'application/problem+json; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
    response.end(body);
  });
  app.server.on('connect', (_request, socket: Duplex) => answerOnSocket(socket, 'invalid_request', 400, 'Bad Request', 'CONNECT is not served here: Rotor is no proxy'));
}

/** The longest path parameter routed to a handler, which refuses it in its own envelope if it is too long. */
const MAX_PARAM_LENGTH = 2048;

export function buildServer(input: BuildServerInput): FastifyInstance {
  const app = Fastify({
    loggerInstance: input.logger,
    bodyLimit: BODY_LIMIT,
    // Long path parameters reach the handlers, which refuse them in their API's envelope (fastify's own
    // 414 at 100 characters answered in its envelope and echoed the path).
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    trustProxy: input.config.trustProxy,
    logController: new LogController({ disableRequestLogging: true }),
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    requestTimeout: REQUEST_TIMEOUT_MS,
    connectionTimeout: IDLE_SOCKET_TIMEOUT_MS,
    http: { headersTimeout: HEADERS_TIMEOUT_MS, connectionsCheckingInterval: TIMEOUT_CHECK_EVERY_MS },
    clientErrorHandler: (err, socket) => answerClientError(input.logger, err, socket),
    // What fails before routing (a malformed percent-escape, a path parameter past maxParamLength): fastify's
    // own answer echoed the whole request target, query string and any token in it included.
    // No onResponse hook runs for these, so they are counted here (probing shows in the request metrics).
    frameworkErrors: (err, request, reply) => {
      input.metrics.requests.inc({ route: 'unmatched', method: request.method, status: '400' });
      return sendProblem(reply, new RotorError('invalid_request', err.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? `a path segment is longer than ${MAX_PARAM_LENGTH} characters`
        : 'the request path is not a valid URL (a malformed percent-escape)'));
    },
  }) as unknown as FastifyInstance;
  // JSON and forms only: text/plain bodies (a CSRF "simple request") are refused with 415.
  app.removeContentTypeParser('text/plain');
  // Node drops headers past the 2,000th without a word, and a duplicate Authorization or DPoP header
  // among them would go unseen; the 16 KiB header limit (431) bounds them instead (SECURITY-CASES H-02).
  app.server.maxHeadersCount = 0;
  answerNodesOwnRefusals(app);

  const ctx: ApiContext = { rotor: input.rotor, config: input.config, metrics: input.metrics };
  limitRequestsInFlight(app, () => input.metrics.connectionsClosed.inc({ reason: 'pipelining' }));

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    input.metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    input.metrics.latency.observe({ route }, reply.elapsedTime / 1000);
    request.log.debug({ req: request, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request completed');
    if (reply.statusCode >= 500 && !answeredBusy.has(request)) request.log.warn({ req: request, status: reply.statusCode }, 'request answered with a server error');
  });

  // The verifier is the process's: every server in it hears of a failure, and stops listening when it closes.
  const stopHearing = proofVerifier.onFailure((failure) => {
    input.metrics.verifierFailures.inc({ failure });
    input.logger.warn({ event: 'dpop_verifier_failed', failure }, 'the DPoP proof-signature thread failed; proofs are checked on the thread pool for 30 s, then a new thread is tried');
  });
  app.addHook('onClose', async () => void stopHearing());

  const routes = [...CORE_ROUTE_CLASSES, ...input.dialects.flatMap((d) => d.routeClasses)];
  if (input.config.rateLimits) {
    const counter = input.rotor.rateCounter();
    const limiter = new RateLimiter(input.config.rateLimits, input.rotor.clock, counter, input.logger, routes);
    const appIdOf = (ref: string) => input.rotor.apps.idOf(ref);
    limiter.register(app, () => input.metrics.events.inc({ event: 'rate_limited' }), appIdOf);
    limiter.start();
    app.addHook('onClose', async () => limiter.stop());
  }

  guardAdminRoutes(app);
  refuseForeignCharsets(app);
  refuseHeadOnClassedRoutes(app, routes);
  const allowedMethods = trackRoutes(app);
  registerCors(app, { rotor: input.rotor, origins: input.config.corsOrigins, issuer: input.config.issuer, allowedMethods, dialects: input.dialects });
  const routeApis = new RouteApis();
  for (const api of [...CORE_APIS, ...input.dialects.map((d) => d.api)]) registerApi(app, api, ctx, routeApis);

  // Unknown paths, other methods, and errors outside any API scope (e.g. a body that failed to parse before routing).
  registerFallbacks(app, { allowedMethods, notFound: true, routeApis });
  return app;
}
