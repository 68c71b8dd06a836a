import { useCallback, useEffect, useReducer, useRef, useState } from 'react';
import type { Order, OrderList } from './api/types';
import { currentToken, initialPager, pagerReducer, type PagerState } from './paging';
import { humanizeError, type HumanProblem } from './problems';
import { usePoll } from './usePoll';

export interface PagedOrders {
  orders: Order[] | null;
  problem: HumanProblem | null;
  pager: PagerState;
  next: () => void;
  previous: () => void;
  reload: () => void;
}

/**
 * One page of an order listing, refreshed by polling so statuses changed elsewhere appear
 * without a reload (render it with a React `key` per listing so another listing starts on
 * its first page). A refresh keeps the rows on screen until the new page arrives (no flash
 * of a loading state), and an answer for a page no longer shown is dropped.
 */
export function usePagedOrders(fetchPage: (token: string | null, signal: AbortSignal) => Promise<OrderList>): PagedOrders {
  const [pager, dispatch] = useReducer(pagerReducer, initialPager);
  const [orders, setOrders] = useState<Order[] | null>(null);
  const [problem, setProblem] = useState<HumanProblem | null>(null);
  const inFlight = useRef<AbortController | null>(null);
  const token = currentToken(pager);

  const load = useCallback(() => {
    if (inFlight.current) return; // a poll while the previous one still runs: skip it
    const controller = new AbortController();
    inFlight.current = controller;
    fetchPage(token, controller.signal)
      .then((page) => {
        setOrders(page.items);
        setProblem(null);
        dispatch({ type: 'loaded', next: page.next_page_token ?? null });
      })
      .catch((err: unknown) => {
        if (controller.signal.aborted) return;
        setProblem(humanizeError(err));
      })
      .finally(() => {
        if (inFlight.current === controller) inFlight.current = null;
      });
  }, [fetchPage, token]);

  useEffect(() => {
    inFlight.current?.abort();
    inFlight.current = null;
    load();
    return () => {
      inFlight.current?.abort();
      inFlight.current = null;
    };
  }, [load]);

  usePoll(load);

  return {
    orders,
    problem,
    pager,
    next: () => dispatch({ type: 'next' }),
    previous: () => dispatch({ type: 'previous' }),
    reload: load,
  };
}
