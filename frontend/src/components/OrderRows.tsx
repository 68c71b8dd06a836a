import type { ReactNode } from 'react';
import type { Order } from '../api/types';
import { formatMoney } from '../money';
import { Link } from '../router';
import { StatusBadge } from './StatusBadge';

export function shortId(id: string): string {
  return id.slice(-8);
}

export function formatDate(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** A list of orders; `actions` adds buttons per row (staff). Rows keep a fixed height. */
export function OrderRows({ orders, caption, actions, showUser = false }: {
  orders: Order[];
  caption: string;
  actions?: (order: Order) => ReactNode;
  showUser?: boolean;
}) {
  return (
    <div className="table-wrap">
      <table className="orders">
        <caption className="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Order</th>
            {showUser && <th scope="col">Customer</th>}
            <th scope="col">Placed</th>
            <th scope="col">Items</th>
            <th scope="col" className="num">Total</th>
            <th scope="col">Status</th>
            {actions && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {orders.map((order) => (
            <tr key={order.id} data-order-id={order.id} data-status={order.status}>
              <th scope="row">
                <Link href={`/orders/${order.id}`} aria-label={`Order ${shortId(order.id)}`}>
                  #{shortId(order.id)}
                </Link>
              </th>
              {showUser && <td>{order.user_id}</td>}
              <td>{formatDate(order.created_at)}</td>
              <td>{order.items.reduce((n, i) => n + i.quantity, 0)}</td>
              <td className="num">{formatMoney(order.total, order.currency)}</td>
              <td>
                <StatusBadge status={order.status} />
              </td>
              {actions && <td className="actions">{actions(order)}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
