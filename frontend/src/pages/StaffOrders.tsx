import { useCallback, useState } from 'react';
import { ApiProblem } from '../api/client';
import { ORDER_STATUSES, type Order, type OrderStatus, type Transition } from '../api/types';
import { useApp } from '../app-context';
import { OrderRows, shortId } from '../components/OrderRows';
import { Pager } from '../components/Pager';
import { ProblemMessage } from '../components/ProblemMessage';
import { hasNext, hasPrevious } from '../paging';
import { humanizeError, type HumanProblem } from '../problems';
import { navigate } from '../router';
import { usePagedOrders } from '../usePagedOrders';
import { STAFF_NEXT } from './OrderDetail';

export const STAFF_PAGE_SIZE = 20;

export function StaffOrders({ status }: { status: OrderStatus }) {
  return (
    <section aria-labelledby="staff-orders-title">
      <h1 id="staff-orders-title">Orders by status</h1>
      <div className="tabs" role="group" aria-label="Status">
        {ORDER_STATUSES.map((s) => (
          <button
            key={s}
            type="button"
            className={s === status ? 'tab current' : 'tab'}
            aria-pressed={s === status}
            onClick={() => navigate(`/staff/orders?status=${s}`)}
          >
            {s.charAt(0) + s.slice(1).toLowerCase()}
          </button>
        ))}
      </div>
      <StatusList key={status} status={status} />
    </section>
  );
}

function StatusList({ status }: { status: OrderStatus }) {
  const { api, announce } = useApp();
  const fetchPage = useCallback(
    (token: string | null, signal: AbortSignal) => api.listByStatus(status, token, STAFF_PAGE_SIZE, signal),
    [api, status],
  );
  const { orders, problem, pager, next, previous, reload } = usePagedOrders(fetchPage);
  // Orders acted on here, by the version the action produced: the list (a read model that may
  // lag a moment) must not show them in their old status again.
  const [moved, setMoved] = useState<Record<string, number>>({});
  const [busy, setBusy] = useState<string | null>(null);
  const [actionProblem, setActionProblem] = useState<HumanProblem | null>(null);

  const act = async (order: Order, transition: Transition, done: string) => {
    setBusy(order.id);
    setActionProblem(null);
    try {
      const changed = await api.transition(order, transition);
      setMoved((m) => ({ ...m, [order.id]: changed.version }));
      announce(`Order #${shortId(order.id)} ${done}.`);
    } catch (err) {
      setActionProblem(humanizeError(err));
      if (err instanceof ApiProblem && (err.status === 409 || err.status === 412)) reload();
    } finally {
      setBusy(null);
    }
  };

  const visible = orders?.filter((o) => !(o.id in moved) || o.version >= (moved[o.id] ?? 0)) ?? null;

  return (
    <>
      <ProblemMessage problem={problem} onRetry={reload} />
      <ProblemMessage problem={actionProblem} focus />
      {visible === null && !problem && <div className="skeleton block-skeleton" aria-busy="true" />}
      {visible !== null && visible.length === 0 && <p>No {status.toLowerCase()} orders.</p>}
      {visible !== null && visible.length > 0 && (
        <OrderRows
          orders={visible}
          caption={`${status} orders`}
          showUser
          actions={(order) => {
            const step = STAFF_NEXT[order.status];
            const cancellable = order.status === 'PENDING' || order.status === 'CONFIRMED';
            return (
              <>
                {step && (
                  <button
                    type="button"
                    disabled={busy === order.id}
                    aria-label={`${step.label} order ${shortId(order.id)}`}
                    onClick={() => void act(order, step.transition, step.done)}
                  >
                    {step.label}
                  </button>
                )}
                {cancellable && (
                  <button
                    type="button"
                    className="danger"
                    disabled={busy === order.id}
                    aria-label={`Cancel order ${shortId(order.id)}`}
                    onClick={() => void act(order, 'cancel', 'cancelled')}
                  >
                    Cancel
                  </button>
                )}
              </>
            );
          }}
        />
      )}
      {visible !== null && (pager.index > 0 || hasNext(pager)) && (
        <Pager label="Order pages" page={pager.index} hasPrevious={hasPrevious(pager)} hasNext={hasNext(pager)} onPrevious={previous} onNext={next} />
      )}
    </>
  );
}
