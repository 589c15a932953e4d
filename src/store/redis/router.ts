import type { Cluster, Redis } from 'ioredis';
import { StoreUnavailableError } from '../../domain/errors.js';
import type { LuaScript } from './lua.js';

type Arg = string | number | Buffer;

/** One command or script for the master of `key`'s slot. */
export interface Op {
  /** A key of the slot it runs on (a script's KEYS[1]). */
  key: string;
  /**
   * The other keys a script touches, declared so that the cluster checks them before the script runs:
   * during a slot migration a script whose keys are split between two nodes is refused whole (TRYAGAIN,
   * ASK) rather than stopped half-way at its first key that already moved.
   */
  keys?: string[];
  script?: LuaScript;
  /** A plain command, when there is no script; `args` follow the key. */
  command?: string;
  args: Arg[];
  /** Answered only once the master and `minReplicas` replicas have it (WAIT on the same connection). */
  durable?: boolean;
  /**
   * May be sent again after a connection broke mid-command (it may have run): reads, and writes that
   * recognise their own resend. Anything else fails with StoreUnavailableError then.
   */
  resendable?: boolean;
  /** This op's own WAIT timeout (it is then sent in a pipeline of its own). */
  waitMs?: number;
}

export interface Outcome {
  value: unknown;
  /** Replicas that acknowledged (WAIT), for durable ops; null otherwise. */
  acks: number | null;
}

interface Pending {
  op: Op;
  deadline: number;
  /** MOVED/ASK target (host:port), and whether ASKING must precede it. */
  target: string | null;
  asking: boolean;
  useEval: boolean;
  resolve: (outcome: Outcome) => void;
  reject: (err: unknown) => void;
}

/** Redis errors that say the command did not run and may run elsewhere or later. */
const NOT_RUN = /^(TRYAGAIN|CLUSTERDOWN|LOADING|MASTERDOWN|READONLY|BUSY|NOREPLICAS)/;
/** A script stopped at a key of a slot that is not (or no longer) this node's; retried once the slot moved. */
const NON_LOCAL = /non local key|while the cluster is down/;
/** One pipeline carries at most this many commands for one node. */
const MAX_BATCH = 256;
const RETRY_DELAY_MS = 50;
/** A stalled node's pipeline is given up after the ops' deadline; never sooner than this. */
const MIN_TIMEOUT_MS = 250;
/** A pipeline ending in WAIT is given this much beyond the WAIT's own timeout. */
const WAIT_MARGIN_MS = 500;

/**
 * Sends ops to the master of their slot, on the one connection ioredis keeps to that node, grouped per
 * node for each turn of the event loop (group commit): one pipeline per node, ending with one WAIT when
 * any op in it is durable — WAIT counts the acknowledgements of everything this connection wrote before
 * it, so one WAIT confirms the whole batch. Redirections (MOVED, ASK), a cluster between masters
 * (CLUSTERDOWN, TRYAGAIN) and a node that went away are retried until the op's deadline; then the caller
 * gets StoreUnavailableError (503). A pipeline the node does not answer ends at that deadline too. Routing uses ioredis' slot table, refreshed on every redirection and
 * every two seconds.
 */
export class Router {
  private pending: Pending[] = [];
  private scheduled = false;
  private readonly loaded = new WeakSet<Redis>();
  private refreshing = false;
  closed = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly settings: { minReplicas: number; waitMs: number; timeoutMs: number; scripts?: readonly LuaScript[] },
  ) {}

  run(op: Op, timeoutMs = this.settings.timeoutMs): Promise<Outcome> {
    if (this.closed) return Promise.reject(new StoreUnavailableError(new Error('the store is closed')));
    return new Promise((resolve, reject) => {
      this.enqueue({ op, deadline: Date.now() + timeoutMs, target: null, asking: false, useEval: false, resolve, reject });
    });
  }

  /** Resolves with the value; a durable op whose replicas did not all acknowledge in time is StoreUnavailableError. */
  async value(op: Op, timeoutMs?: number): Promise<unknown> {
    const outcome = await this.run(op, timeoutMs);
    if (op.durable && this.settings.minReplicas > 0 && (outcome.acks ?? 0) < this.settings.minReplicas) {
      throw new StoreUnavailableError(new Error(`the write was not acknowledged by ${this.settings.minReplicas} replica(s) within ${this.settings.waitMs} ms`));
    }
    return outcome.value;
  }

  /** Every op still queued or in flight fails (on close). */
  failAll(): void {
    this.closed = true;
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) p.reject(new StoreUnavailableError(new Error('the store is closed')));
  }

  private enqueue(p: Pending): void {
    this.pending.push(p);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private later(p: Pending, err: unknown): void {
    if (Date.now() + RETRY_DELAY_MS > p.deadline) {
      p.reject(new StoreUnavailableError(err));
      return;
    }
    this.refreshSlots();
    setTimeout(() => this.enqueue(p), RETRY_DELAY_MS);
  }

  private refreshSlots(): void {
    if (this.refreshing) return;
    this.refreshing = true;
    this.cluster.refreshSlotsCache(() => { this.refreshing = false; });
  }

  private nodeFor(p: Pending): Redis | null {
    const key = p.target ?? this.cluster.slots[slotOf(p.op.key)]?.[0];
    if (!key) return null;
    const nodes = this.cluster.nodes('all');
    for (const node of nodes) if (`${node.options.host}:${node.options.port}` === key) return node;
    return null;
  }

  private flush(): void {
    this.scheduled = false;
    const pending = this.pending;
    this.pending = [];
    const groups = new Map<Redis, Pending[]>();
    for (const p of pending) {
      if (Date.now() > p.deadline) {
        p.reject(new StoreUnavailableError(new Error('the cluster did not answer in time')));
        continue;
      }
      const node = this.cluster.status === 'ready' ? this.nodeFor(p) : null;
      if (!node) {
        this.later(p, new Error(`no master is known for slot ${slotOf(p.op.key)}`));
        continue;
      }
      if (p.asking || p.op.waitMs !== undefined) {
        void this.send(node, [p]);
        continue;
      }
      const group = groups.get(node);
      if (group) group.push(p);
      else groups.set(node, [p]);
    }
    for (const [node, group] of groups) {
      for (let i = 0; i < group.length; i += MAX_BATCH) void this.send(node, group.slice(i, i + MAX_BATCH));
    }
  }

  private async send(node: Redis, batch: Pending[]): Promise<void> {
    const pipeline = node.pipeline();
    const loading = !this.loaded.has(node);
    // Every script at the first contact, not only this batch's: a later first use would cost a
    // NOSCRIPT round trip, and a NOSCRIPT that comes back after the deadline leaves the op unrun.
    const scripts = loading ? new Set([...this.settings.scripts ?? [], ...batch.flatMap((p) => (p.op.script ? [p.op.script] : []))]) : new Set<LuaScript>();
    for (const s of scripts) pipeline.call('SCRIPT', 'LOAD', s.source);
    const offset = scripts.size;
    for (const p of batch) {
      if (p.asking) pipeline.call('ASKING');
      const { op } = p;
      if (op.script) {
        const keys = [op.key, ...(op.keys ?? [])];
        if (p.useEval) pipeline.call('EVAL', op.script.source, String(keys.length), ...keys, ...op.args);
        else pipeline.call('EVALSHA', op.script.sha, String(keys.length), ...keys, ...op.args);
      } else {
        pipeline.call(op.command!, op.key, ...op.args);
      }
    }
    const durable = this.settings.minReplicas > 0 && batch.some((p) => p.op.durable);
    const waitMs = Math.max(1, Math.round(batch.length === 1 && batch[0]!.op.waitMs !== undefined ? batch[0]!.op.waitMs : this.settings.waitMs));
    if (durable) pipeline.call('WAIT', String(this.settings.minReplicas), String(waitMs));
    // A node that stops answering (SIGSTOP, a frozen VM, a half-open link) keeps its socket open, so
    // nothing would end the pipeline: bound it by the ops' own deadline (and never cut a WAIT short).
    const budget = Math.max(MIN_TIMEOUT_MS, ...batch.map((p) => p.deadline - Date.now()), durable ? waitMs + WAIT_MARGIN_MS : 0);
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), budget); });
    const replied = pipeline.exec().then((r) => r ?? [], (err: unknown) => batch.map((): [Error | null, unknown] => [err as Error, null]));
    const results = await Promise.race([replied, stalled]);
    clearTimeout(timer);
    if (results === null) {
      // It may still run when the node wakes up: never resent, the caller gets 503.
      this.refreshSlots();
      const err = new StoreUnavailableError(new Error(`the Redis node at ${node.options.host}:${node.options.port} did not answer within ${budget} ms`));
      for (const p of batch) p.reject(err);
      return;
    }
    if (loading && results.slice(0, offset).every(([err]) => !err)) this.loaded.add(node);
    const askShift = (i: number) => (batch[i]!.asking ? 1 : 0);
    let index = offset;
    const waitResult = durable ? results[results.length - 1] : undefined;
    const acks = waitResult && !waitResult[0] ? Number(waitResult[1]) : 0;
    batch.forEach((p, i) => {
      index += askShift(i);
      const [err, value] = results[index] ?? [new Error('no reply'), null];
      index += 1;
      if (!err) {
        p.resolve({ value, acks: p.op.durable ? (this.settings.minReplicas > 0 ? acks : 0) : null });
        return;
      }
      this.failed(p, err);
    });
  }

  private failed(p: Pending, err: Error): void {
    const message = err.message ?? '';
    const redirect = /^(MOVED|ASK) \d+ (\S+)/.exec(message);
    if (redirect) {
      p.target = redirect[2]!;
      p.asking = redirect[1] === 'ASK';
      if (!p.asking) this.refreshSlots();
      if (Date.now() > p.deadline) p.reject(new StoreUnavailableError(err));
      else this.enqueue(p);
      return;
    }
    p.target = null;
    p.asking = false;
    if (message.startsWith('NOSCRIPT')) {
      p.useEval = true;
      this.enqueue(p);
      return;
    }
    if (NOT_RUN.test(message) || NON_LOCAL.test(message)) {
      this.later(p, err);
      return;
    }
    if (message.startsWith('OOM')) {
      p.reject(new StoreUnavailableError(err));
      return;
    }
    if ((err as { name?: string }).name === 'ReplyError') {
      // A script's own error or a wrong command: a bug, not an outage.
      p.reject(err);
      return;
    }
    // The connection broke or never opened: the command may have run.
    if (p.op.resendable || /connect|ECONNREFUSED|ENOTFOUND|EHOSTUNREACH/i.test(message) && !/closed/i.test(message)) {
      this.later(p, err);
      return;
    }
    p.reject(new StoreUnavailableError(err));
  }
}

// ── hash slots (CRC16/XMODEM of the key, or of its {hash tag}) ───────────────────────────────────

const CRC_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i += 1) {
    let crc = i << 8;
    for (let j = 0; j < 8; j += 1) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

export function slotOf(key: string): number {
  let bytes = Buffer.from(key);
  const open = bytes.indexOf(0x7b);
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ CRC_TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc % 16384;
}
