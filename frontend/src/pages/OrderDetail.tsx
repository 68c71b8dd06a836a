import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import { ApiProblem } from '../api/client';
import type { Order, ShippingAddress, Transition } from '../api/types';
import { useApp } from '../app-context';
import { AddressFields, cleanAddress } from '../components/AddressFields';
import { formatDate, shortId } from '../components/OrderRows';
import { ProblemMessage } from '../components/ProblemMessage';
import { StatusBadge } from '../components/StatusBadge';
import { formatMoney } from '../money';
import { humanizeError, type HumanProblem } from '../problems';
import { Link } from '../router';
import { usePoll } from '../usePoll';

export const STAFF_NEXT: Partial<Record<Order['status'], { transition: Transition; label: string; done: string }>> = {
  PENDING: { transition: 'confirm', label: 'Confirm', done: 'confirmed' },
  CONFIRMED: { transition: 'ship', label: 'Ship', done: 'shipped' },
  SHIPPED: { transition: 'deliver', label: 'Deliver', done: 'delivered' },
};

export function OrderDetail({ id, minVersion, placed }: { id: string; minVersion: number; placed: boolean }) {
  const { api, session, announce } = useApp();
  const [order, setOrder] = useState<Order | null>(null);
  const [problem, setProblem] = useState<HumanProblem | null>(null);
  const [actionProblem, setActionProblem] = useState<HumanProblem | null>(null);
  const [busy, setBusy] = useState(false);
  const [editing, setEditing] = useState(false);
  const [confirmCancel, setConfirmCancel] = useState(false);
  // The newest version seen: every read asks for at least it, so the page never goes back.
  const known = useRef(minVersion);

  const accept = useCallback((next: Order) => {
    if (next.version < known.current) return;
    known.current = next.version;
    setOrder(next);
  }, []);

  const load = useCallback(
    (signal?: AbortSignal) => {
      api
        .getOrder(id, known.current || undefined, signal)
        .then((next) => {
          accept(next);
          setProblem(null);
        })
        .catch((err: unknown) => {
          if (!signal?.aborted) setProblem(humanizeError(err));
        });
    },
    [api, id, accept],
  );

  useEffect(() => {
    const controller = new AbortController();
    load(controller.signal);
    return () => controller.abort();
  }, [load]);
  usePoll(() => load(), undefined, !editing);

  const act = async (transition: Transition, done: string) => {
    if (!order) return;
    setBusy(true);
    setActionProblem(null);
    try {
      accept(await api.transition(order, transition));
      announce(done);
      setConfirmCancel(false);
    } catch (err) {
      setActionProblem(humanizeError(err));
      if (err instanceof ApiProblem && (err.status === 409 || err.status === 412)) load();
    } finally {
      setBusy(false);
    }
  };

  if (!order) {
    return (
      <section aria-labelledby="order-title">
        <h1 id="order-title">Order</h1>
        {/* The order was committed before we came here: say so even when it cannot be shown yet. */}
        {placed && problem && <p className="notice" role="status">Thank you! Your order was placed.</p>}
        <ProblemMessage problem={problem} onRetry={() => load()} />
        {!problem && <div className="skeleton block-skeleton" aria-busy="true" />}
      </section>
    );
  }

  const editable = order.status === 'PENDING' && order.user_id === session.user;
  const cancellable = order.status === 'PENDING' || order.status === 'CONFIRMED';
  const staffNext = session.admin ? STAFF_NEXT[order.status] : undefined;
  const address = order.shipping_address;

  return (
    <section aria-labelledby="order-title" data-order-id={order.id} data-version={order.version}>
      <p>
        <Link href={session.admin && order.user_id !== session.user ? '/staff/orders' : '/orders'}>← Back to orders</Link>
      </p>
      <h1 id="order-title">Order #{shortId(order.id)}</h1>
      {placed && <p className="notice" role="status">Thank you! Your order was placed.</p>}
      <dl className="facts">
        <dt>Status</dt>
        <dd aria-live="polite" data-testid="order-status">
          <StatusBadge status={order.status} />
        </dd>
        <dt>Placed</dt>
        <dd>{formatDate(order.created_at)}</dd>
        <dt>Last change</dt>
        <dd>{formatDate(order.updated_at)}</dd>
        <dt>Total</dt>
        <dd className="total">{formatMoney(order.total, order.currency)}</dd>
        {order.user_id !== session.user && (
          <>
            <dt>Customer</dt>
            <dd>{order.user_id}</dd>
          </>
        )}
      </dl>
      <ProblemMessage problem={problem} />
      <ProblemMessage problem={actionProblem} focus />

      {editing ? (
        <EditOrder
          order={order}
          onCancel={() => setEditing(false)}
          onSaved={(saved) => {
            accept(saved);
            setEditing(false);
            announce('Your changes were saved.');
          }}
          onStale={() => load()}
        />
      ) : (
        <>
          <h2>Items</h2>
          <div className="table-wrap">
            <table className="lines">
              <thead>
                <tr>
                  <th scope="col">Item</th>
                  <th scope="col" className="num">Quantity</th>
                  <th scope="col" className="num">Price</th>
                </tr>
              </thead>
              <tbody>
                {order.items.map((item) => (
                  <tr key={item.sku}>
                    <th scope="row">
                      {item.name}
                      <span className="muted block">{formatMoney(item.unit_price, order.currency)} each</span>
                    </th>
                    <td className="num">{item.quantity}</td>
                    <td className="num">{formatMoney(item.line_total, order.currency)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <h2>Shipping address</h2>
          <address>
            {address.name}
            <br />
            {address.line1}
            {address.line2 && (
              <>
                <br />
                {address.line2}
              </>
            )}
            <br />
            {address.postal_code} {address.city}
            {address.region ? `, ${address.region}` : ''}
            <br />
            {address.country}
          </address>
          <div className="button-row">
            {editable && (
              <button type="button" className="secondary" onClick={() => setEditing(true)} disabled={busy}>
                Edit order
              </button>
            )}
            {staffNext && (
              <button type="button" onClick={() => void act(staffNext.transition, `Order ${staffNext.done}.`)} disabled={busy}>
                {staffNext.label}
              </button>
            )}
            {cancellable && !confirmCancel && (
              <button type="button" className="danger" onClick={() => setConfirmCancel(true)} disabled={busy}>
                Cancel order
              </button>
            )}
          </div>
          {confirmCancel && (
            <div className="confirm" role="group" aria-labelledby="cancel-question">
              <p id="cancel-question">Cancel this order? This cannot be undone.</p>
              <button type="button" className="danger" onClick={() => void act('cancel', 'The order was cancelled.')} disabled={busy} autoFocus>
                Yes, cancel the order
              </button>
              <button type="button" className="secondary" onClick={() => setConfirmCancel(false)} disabled={busy}>
                Keep the order
              </button>
            </div>
          )}
        </>
      )}
    </section>
  );
}

function EditOrder({ order, onCancel, onSaved, onStale }: {
  order: Order;
  onCancel: () => void;
  onSaved: (order: Order) => void;
  onStale: () => void;
}) {
  const { api } = useApp();
  const [quantities, setQuantities] = useState<Record<string, number>>(() => Object.fromEntries(order.items.map((i) => [i.sku, i.quantity])));
  const [address, setAddress] = useState<ShippingAddress>(order.shipping_address);
  const [saving, setSaving] = useState(false);
  const [problem, setProblem] = useState<HumanProblem | null>(null);

  const save = async (event: FormEvent) => {
    event.preventDefault();
    const items = order.items.map((i) => ({ sku: i.sku, quantity: quantities[i.sku] ?? i.quantity })).filter((i) => i.quantity > 0);
    if (items.length === 0) {
      setProblem({ title: 'An order needs at least one item.', advice: 'To give up the whole order, cancel it instead.', fields: [], status: 422 });
      return;
    }
    setSaving(true);
    setProblem(null);
    try {
      onSaved(await api.updateOrder(order, { items, shipping_address: cleanAddress(address) }));
    } catch (err) {
      setProblem(humanizeError(err));
      if (err instanceof ApiProblem && (err.status === 412 || err.status === 409)) onStale();
    } finally {
      setSaving(false);
    }
  };

  return (
    <form className="form" onSubmit={save} aria-labelledby="edit-title">
      <h2 id="edit-title">Edit order</h2>
      <fieldset disabled={saving}>
        <legend>Quantities (0 removes the item)</legend>
        {order.items.map((item) => (
          <div className="field inline" key={item.sku}>
            <label htmlFor={`edit-qty-${item.sku}`}>{item.name}</label>
            <input
              id={`edit-qty-${item.sku}`}
              type="number"
              className="qty"
              min={0}
              max={1000}
              value={quantities[item.sku] ?? item.quantity}
              onChange={(e) => setQuantities({ ...quantities, [item.sku]: Math.max(0, Math.trunc(Number(e.target.value) || 0)) })}
            />
          </div>
        ))}
      </fieldset>
      <AddressFields idPrefix="edit" address={address} onChange={setAddress} disabled={saving} />
      <ProblemMessage problem={problem} focus />
      <div className="button-row">
        <button type="submit" disabled={saving}>
          {saving ? 'Saving…' : 'Save changes'}
        </button>
        <button type="button" className="secondary" onClick={onCancel} disabled={saving}>
          Discard changes
        </button>
      </div>
    </form>
  );
}
