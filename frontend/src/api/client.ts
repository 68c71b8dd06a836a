// The API as the SPA uses it: one origin (`ordexa web` forwards /api), bearer tokens, problem
// details turned into `ApiProblem`, versions from ETags for If-Match and min_version reads.

import type { ItemRequest, Order, OrderList, OrderStatus, Problem, Product, ShippingAddress, Transition } from './types';

/** A failed request, carrying the problem details (or a synthesized one for network errors). */
export class ApiProblem extends Error {
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(problem.detail ?? problem.title ?? `HTTP ${problem.status}`);
    this.name = 'ApiProblem';
    this.problem = problem;
  }

  get status(): number {
    return this.problem.status;
  }
}

/** Status 0: the request never got an answer (offline, server down, aborted). */
export const NETWORK_PROBLEM_STATUS = 0;

type Fetch = typeof fetch;

export interface ClientOptions {
  token: () => string | null;
  /** Called when the API says the token is no good (401), so the app can sign out. */
  onUnauthorized?: () => void;
  fetch?: Fetch;
}

async function toProblem(response: Response): Promise<Problem> {
  const type = response.headers.get('content-type') ?? '';
  if (type.includes('json')) {
    try {
      const body = (await response.json()) as Partial<Problem>;
      return { ...body, status: typeof body.status === 'number' ? body.status : response.status };
    } catch {
      // Fall through to a problem built from the status alone.
    }
  }
  return { status: response.status, title: response.statusText };
}

export class Api {
  private readonly options: ClientOptions;

  constructor(options: ClientOptions) {
    this.options = options;
  }

  private async request<T>(method: string, path: string, init: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json', ...init.headers };
    const token = this.options.token();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (init.body !== undefined) headers['Content-Type'] = 'application/json';
    const doFetch = this.options.fetch ?? fetch;
    let response: Response;
    try {
      response = await doFetch(`/api/v1${path}`, {
        method,
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: init.signal,
      });
    } catch (err) {
      if (err instanceof DOMException && err.name === 'AbortError') throw err;
      throw new ApiProblem({ status: NETWORK_PROBLEM_STATUS, title: 'Network error', detail: String(err) });
    }
    if (!response.ok) {
      if (response.status === 401) this.options.onUnauthorized?.();
      throw new ApiProblem(await toProblem(response));
    }
    return (await response.json()) as T;
  }

  listProducts(signal?: AbortSignal): Promise<{ items: Product[] }> {
    return this.request('GET', '/products', { signal });
  }

  createProduct(product: Product): Promise<Product> {
    return this.request('POST', '/products', { body: product });
  }

  updateProduct(product: Product): Promise<Product> {
    return this.request('PUT', `/products/${encodeURIComponent(product.sku)}`, { body: product });
  }

  /** The same `idempotencyKey` for a retried or repeated submission: the API answers the first order. */
  createOrder(items: ItemRequest[], shippingAddress: ShippingAddress, idempotencyKey: string): Promise<Order> {
    return this.request('POST', '/orders', {
      body: { items, shipping_address: shippingAddress },
      headers: { 'Idempotency-Key': idempotencyKey },
    });
  }

  /** `minVersion`: the version a write just returned, so the read is never older than it. */
  getOrder(id: string, minVersion?: number, signal?: AbortSignal): Promise<Order> {
    const query = minVersion ? `?min_version=${minVersion}` : '';
    return this.request('GET', `/orders/${encodeURIComponent(id)}${query}`, { signal });
  }

  listMyOrders(pageToken: string | null, limit: number, signal?: AbortSignal): Promise<OrderList> {
    return this.request('GET', `/orders?${listQuery(pageToken, limit)}`, { signal });
  }

  listByStatus(status: OrderStatus, pageToken: string | null, limit: number, signal?: AbortSignal): Promise<OrderList> {
    return this.request('GET', `/orders?status=${status}&${listQuery(pageToken, limit)}`, { signal });
  }

  updateOrder(order: Order, change: { items?: ItemRequest[]; shipping_address?: ShippingAddress }): Promise<Order> {
    return this.request('PATCH', `/orders/${encodeURIComponent(order.id)}`, {
      body: change,
      headers: { 'If-Match': `"${order.version}"` },
    });
  }

  transition(order: Order, transition: Transition): Promise<Order> {
    return this.request('POST', `/orders/${encodeURIComponent(order.id)}/${transition}`, {
      headers: { 'If-Match': `"${order.version}"` },
    });
  }
}

function listQuery(pageToken: string | null, limit: number): string {
  const params = new URLSearchParams({ limit: String(limit) });
  if (pageToken) params.set('page_token', pageToken);
  return params.toString();
}

/** Development sign-in through `ordexa web` (404 when the system does not run in dev mode). */
export async function devSignIn(user: string, admin: boolean, doFetch: Fetch = fetch): Promise<string> {
  let response: Response;
  try {
    response = await doFetch('/dev/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ user, admin }),
    });
  } catch (err) {
    throw new ApiProblem({ status: NETWORK_PROBLEM_STATUS, title: 'Network error', detail: String(err) });
  }
  if (!response.ok) throw new ApiProblem(await toProblem(response));
  const body = (await response.json()) as { token: string };
  return body.token;
}

/** Whether this deployment offers development sign-in. */
export async function fetchClientConfig(doFetch: Fetch = fetch): Promise<{ dev_sign_in: boolean }> {
  try {
    const response = await doFetch('/config.json', { headers: { Accept: 'application/json' } });
    if (!response.ok) return { dev_sign_in: false };
    return (await response.json()) as { dev_sign_in: boolean };
  } catch {
    return { dev_sign_in: false };
  }
}
