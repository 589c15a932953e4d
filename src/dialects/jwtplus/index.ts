import type { Dialect } from '../dialect.js';
import { jwtplusFormat } from './format.js';
import { jwtplusApi } from './routes.js';

/** SPEC §4.4 JWTPlus: the app's backend signs and renews pairs at `/app/{app_id}/…` with its app key. */
export const jwtplus: Dialect<'jwtplus'> = {
  name: 'jwtplus',
  domain: {
    profile: 'jwtplus',
    format: jwtplusFormat,
    defaults: { accessTtl: 3600, refreshTtl: 3 * 3600, refreshNotBefore: 60, reuseGrace: 0, sessionMaxAge: null, binding: 'record' },
    policyFields: [],
    keyless: false,
    publicByDefault: false,
  },
  http: {
    api: jwtplusApi,
    routeClasses: [
      { url: '/app/:app_id/renew', class: 'refresh' },
      { url: '/app/:app_id/sign', class: 'issue', methods: ['POST'] },
    ],
    // routes/routes.go: gin-contrib/cors with origins `*`; Authorization added so its app key can be sent.
    openCors: {
      owns: (path) => path === '/app' || path.startsWith('/app/'),
      methods: 'GET,POST,PUT,PATCH,DELETE,OPTIONS',
      headers: 'Origin,Authorization',
      expose: 'Content-Length',
      appIdOf: ({ app_id: id }) => (typeof id === 'string' && /^[0-9A-HJKMNP-TV-Z]{26}$/i.test(id) ? id.toUpperCase() : null),
    },
  },
};
