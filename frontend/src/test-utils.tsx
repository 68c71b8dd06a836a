import { render } from '@testing-library/react';
import { useReducer, type ReactNode } from 'react';
import { vi } from 'vitest';
import { Api } from './api/client';
import { AppContext } from './app-context';
import { cartReducer, type Cart } from './cart';
import type { Session } from './session';

export const alice: Session = { token: 'token-alice', user: 'alice', admin: false, expiresAt: 4102444800 };

export interface Call {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

/** A fetch that records each call and answers with the next scripted response. */
export function scriptedFetch(answer: (call: Call) => Response | Promise<Response>) {
  const calls: Call[] = [];
  const fetch = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const call: Call = {
      method: init?.method ?? 'GET',
      url: String(input),
      headers: (init?.headers ?? {}) as Record<string, string>,
      body: typeof init?.body === 'string' ? JSON.parse(init.body) : undefined,
    };
    calls.push(call);
    return answer(call);
  });
  return { fetch: fetch as unknown as typeof globalThis.fetch, calls };
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json', ...headers },
  });
}

function Harness({ api, initialCart, children }: { api: Api; initialCart: Cart; children: ReactNode }) {
  const [cart, dispatchCart] = useReducer(cartReducer, initialCart);
  return (
    <AppContext.Provider value={{ api, session: alice, cart, dispatchCart, signOut: () => {}, announce: () => {} }}>
      {children}
    </AppContext.Provider>
  );
}

export function renderWithApp(ui: ReactNode, fetch: typeof globalThis.fetch, initialCart: Cart) {
  const api = new Api({ token: () => alice.token, fetch });
  return render(
    <Harness api={api} initialCart={initialCart}>
      {ui}
    </Harness>,
  );
}
