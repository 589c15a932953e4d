import type { App, Session } from './types.js';
import { engineCore, type EngineCore, type EngineDeps } from './engine/core.js';
import { appOfToken, introspect, liveRefreshOf } from './engine/introspect.js';
import { issue, renewAccess } from './engine/issue.js';
import { refresh } from './engine/rotate.js';
import { revokeSession, revokeToken, type RevokeSessionInput } from './engine/revoke.js';
import { checkAccess, verifyJwt, type VerifiedJwt, type VerifyJwtOptions } from './engine/verify.js';
import type {
  AccessCheck, CheckAccessOptions, Introspection, IssueInput, Issued, LiveRefresh, RefreshOptions, RenewAccessOptions, VerifiedAccess,
} from './engine/types.js';

export type { EngineDeps } from './engine/core.js';
export type {
  AccessCheck, AccessRefusal, CheckAccessOptions, ClientContext, DpopInput, Introspection, IssueInput, Issued, LiveRefresh,
  RefreshOptions, RenewAccessOptions, VerifiedAccess,
} from './engine/types.js';
export type { RevokeSessionInput } from './engine/revoke.js';
export type { VerifiedJwt, VerifyJwtOptions } from './engine/verify.js';
export { requireAccess } from './engine/verify.js';
export { MAX_ISSUED_TOKEN_LENGTH } from './engine/minting.js';
export { NBF_LEEWAY_SECONDS } from './engine/session_rules.js';

/**
 * The rotation engine: issues sessions, renews them, detects reuse, verifies and revokes tokens.
 * It knows the storage contract and the token formats it is handed, nothing of HTTP or SQL. Each
 * operation lives in its own module under `engine/` (issue, rotate, revoke, verify, introspect);
 * this class only binds them to one set of dependencies.
 */
export class Engine {
  private readonly core: EngineCore;

  constructor(deps: EngineDeps) {
    this.core = engineCore(deps);
  }

  issue(app: App, input: IssueInput): Promise<Issued> {
    return issue(this.core, app, input);
  }

  refresh(token: unknown, options: RefreshOptions = {}): Promise<Issued> {
    return refresh(this.core, token, options);
  }

  renewAccess(access: VerifiedAccess, options: RenewAccessOptions = {}): Promise<Issued> {
    return renewAccess(this.core, access, options);
  }

  checkAccess(token: unknown, options: CheckAccessOptions = {}): Promise<AccessCheck> {
    return checkAccess(this.core, token, options);
  }

  verifyJwt(token: string, options: VerifyJwtOptions): Promise<VerifiedJwt | null> {
    return verifyJwt(this.core, token, options);
  }

  introspect(token: unknown, client: App): Promise<Introspection> {
    return introspect(this.core, token, client);
  }

  appOfToken(token: unknown): Promise<App | null> {
    return appOfToken(this.core, token);
  }

  liveRefreshOf(app: App, session: Session): Promise<LiveRefresh | null> {
    return liveRefreshOf(this.core, app, session);
  }

  revokeToken(token: unknown, client?: App): Promise<{ revoked: boolean }> {
    return revokeToken(this.core, token, client);
  }

  revokeSession(input: RevokeSessionInput): Promise<boolean> {
    return revokeSession(this.core, input);
  }
}
