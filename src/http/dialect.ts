import type { FastifyRequest } from 'fastify';
import type { Api } from './api.js';

/** What a route is counted as by the rate limiter (SPEC §4.5); `admin` is the admin API's own. */
export type RouteClass = 'refresh' | 'login' | 'issue';

/** One route (as declared, `:param`s and all) and what the rate limiter counts it as; `methods`: only these. */
export interface RouteClassRule {
  readonly url: string;
  readonly class: RouteClass;
  readonly methods?: readonly string[];
}

/**
 * What the HTTP server knows of one dialect: the half of a `Dialect` (src/dialects/dialect.ts) that is
 * HTTP. The server is handed a list of these (`buildServer({ dialects })`) and never imports a dialect.
 */
export interface DialectHttp {
  /** Its routes and its error envelope, registered like every other API (registerApi). */
  readonly api: Api;
  /** Which of its routes are renewals, logins and issuance: rate-limited as such. First match wins. */
  readonly routeClasses: readonly RouteClassRule[];
  /**
   * CORS (SPEC §4.6): whether on `route` the app shows only inside the handler (a login at the root),
   * so every app of this dialect counts when narrowing by allowedOrigins.
   */
  appHiddenUntilHandled?(request: FastifyRequest, route: string): boolean;
  /** CORS for routes that answer every origin, as the dialect's own server does (JWTPlus). */
  readonly openCors?: OpenCors;
}

/** A dialect's routes that allow every origin (SPEC §4.6 `open`): which, with what headers, and their app. */
export interface OpenCors {
  /** Whether `path` (without a mount prefix) is one of these routes. */
  owns(path: string): boolean;
  /** The preflight's Access-Control-Allow-Methods and -Allow-Headers, and the headers responses expose. */
  readonly methods: string;
  readonly headers: string;
  readonly expose: string;
  /** The canonical id of the app the route's params name (its allowedOrigins narrows), or null. */
  appIdOf(params: Record<string, unknown>): string | null;
}
