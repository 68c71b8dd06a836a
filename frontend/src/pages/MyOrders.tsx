import { useCallback } from 'react';
import { useApp } from '../app-context';
import { OrderRows } from '../components/OrderRows';
import { Pager } from '../components/Pager';
import { ProblemMessage } from '../components/ProblemMessage';
import { hasNext, hasPrevious } from '../paging';
import { Link } from '../router';
import { usePagedOrders } from '../usePagedOrders';

export const PAGE_SIZE = 10;

export function MyOrders() {
  const { api } = useApp();
  const fetchPage = useCallback((token: string | null, signal: AbortSignal) => api.listMyOrders(token, PAGE_SIZE, signal), [api]);
  const { orders, problem, pager, next, previous, reload } = usePagedOrders(fetchPage);

  return (
    <section aria-labelledby="orders-title">
      <h1 id="orders-title">My orders</h1>
      <p className="hint">Newest first. Statuses update by themselves.</p>
      <ProblemMessage problem={problem} onRetry={reload} />
      {orders === null && !problem && <div className="skeleton block-skeleton" aria-busy="true" />}
      {orders !== null && orders.length === 0 && pager.index === 0 && (
        <p>
          No orders yet. <Link href="/">Browse the catalog</Link>.
        </p>
      )}
      {orders !== null && orders.length > 0 && <OrderRows orders={orders} caption="Your orders, newest first" />}
      {orders !== null && (pager.index > 0 || hasNext(pager)) && (
        <Pager label="Order pages" page={pager.index} hasPrevious={hasPrevious(pager)} hasNext={hasNext(pager)} onPrevious={previous} onNext={next} />
      )}
    </section>
  );
}
