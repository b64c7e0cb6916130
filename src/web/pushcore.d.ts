// Type declarations for pushcore.js (served by pushcore at /pushcore.js).

/** Connection state reported to `onStatus`. */
export type Status = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Extra detail for a status: the wait before the next attempt, or why the client stopped. */
export interface StatusInfo {
  delayMs?: number;
  attempt?: number;
  reason?: string;
}

/** The server could not replay exactly from the requested id; refetch your state. */
export interface ResetInfo {
  reason: 'evicted' | 'previous-run' | 'unknown-id' | 'malformed-id' | string;
  requested: string;
}

/** Where an event came from. `id` is null for per-connection events (connected, reset, …). */
export interface EventMeta {
  id: string | null;
  type: string;
}

export interface SSEClientOptions {
  /** Sent as `Authorization: Bearer …`; a function is called again after a 401 or
   * `token-expired`. Omit it to rely on a cookie (see `withCredentials`). */
  token?: string | (() => string | null | Promise<string | null>);
  onReset?: (info: ResetInfo) => void;
  onStatus?: (status: Status, info: StatusInfo) => void;
  /** One connection for all tabs of the origin (Web Locks + BroadcastChannel). Default true. */
  shareAcrossTabs?: boolean;
  /** Send cookies cross-origin (`credentials: 'include'`; the server needs --cors-credentials). */
  withCredentials?: boolean;
  /** Backoff base (replaced by the server's `retry:`) and cap, in ms. Defaults 1000 and 30000. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Consecutive failed attempts before giving up. Default: never give up. */
  maxRetries?: number;
  /** Resume from this id on the first connection. */
  lastEventId?: string;
}

export class SSEClient {
  constructor(url: string | URL, channels?: string[] | string, options?: SSEClientOptions);
  readonly url: string;
  readonly channels: string[];
  /** The current state. */
  readonly status: Status;
  /** Why the client stopped (`'disconnected'`, `'403 …'`, …), once closed. */
  readonly closeReason: string | null;
  /** 'leader' (this tab holds the connection), 'follower', or 'alone' (not shared). */
  readonly role: 'leader' | 'follower' | 'alone' | null;
  /** The id of the last event delivered. */
  readonly lastEventId: string | null;
  /** Listen to one event type, or '*' for every event; returns a function that removes it.
   * `data` is JSON-parsed (the raw string when it is not JSON). */
  on<T = unknown>(type: string, cb: (data: T, meta: EventMeta) => void): () => void;
  off(type: string, cb: (data: any, meta: EventMeta) => void): void;
  connect(): void;
  disconnect(): void;
}

/** Incremental WHATWG event-stream parser. */
export class EventStreamParser {
  constructor(
    onEvent: (ev: { type: string; data: string; id: string; hasId: boolean }) => void,
    onRetry?: (ms: number) => void,
  );
  feed(text: string): void;
}

/** Orders `<ms>-<seq>` and decimal ids; null when the order is unknown. */
export function compareIds(a: string, b: string): -1 | 0 | 1 | null;
/** Full-jitter backoff: uniform in [0, min(capMs, baseMs·2ⁿ)]. */
export function backoffMs(n: number, baseMs?: number, capMs?: number): number;
/** A `Retry-After` value (seconds or HTTP date) in ms, or null. */
export function retryAfterMs(value: string | null, now?: number): number | null;
