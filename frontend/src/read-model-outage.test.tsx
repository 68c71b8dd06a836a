import { act, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Order } from './api/types';
import { emptyCart } from './cart';
import { MyOrders } from './pages/MyOrders';
import { OrderDetail } from './pages/OrderDetail';
import { humanize } from './problems';
import { json, renderWithApp, scriptedFetch } from './test-utils';

// What the API answers while Cassandra (the read model) is down: reads fail, commands work.
const readModelDown = {
  type: 'https://ordexa.io/problems/read-model-unavailable',
  title: 'Orders cannot be read right now; placing and changing orders still works',
  status: 503,
  detail: 'the read model is unavailable: No connections in the pool',
};

const order: Order = {
  id: '0191a7c2-7e1b-7000-8000-00000000abcd',
  user_id: 'alice',
  status: 'PENDING',
  items: [{ sku: 'TEA-1', name: 'Green tea', quantity: 2, unit_price: 450, line_total: 900 }],
  currency: 'EUR',
  total: 900,
  shipping_address: { name: 'Alice', line1: 'Main St 1', city: 'Berlin', postal_code: '10115', country: 'DE' },
  version: 1,
  created_at: '2026-11-26T12:00:00Z',
  updated_at: '2026-11-26T12:00:00Z',
};

afterEach(() => {
  vi.useRealTimers();
});

describe('while orders cannot be read', () => {
  it('says so, and that placing and changing orders still works, unlike a general outage', () => {
    const human = humanize(readModelDown);
    expect(human.title).toBe('Orders cannot be shown right now.');
    expect(human.advice).toMatch(/placing, changing and cancelling orders still works/);
    expect(human.kind).toBe('read-model-unavailable');
    // Any other 503 is the general message.
    expect(humanize({ ...readModelDown, type: 'https://ordexa.io/problems/overloaded' }).title).toBe('Ordexa is temporarily unavailable.');
  });

  it('my orders explains the outage and recovers by itself when reads are back', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    let down = true;
    const { fetch } = scriptedFetch(() => (down ? json(503, readModelDown, { 'retry-after': '1' }) : json(200, { items: [order] })));
    renderWithApp(<MyOrders />, fetch, emptyCart());

    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('Orders cannot be shown right now.');
    expect(alert).toHaveTextContent('placing, changing and cancelling orders still works');
    expect(alert).toHaveAttribute('data-kind', 'read-model-unavailable');

    down = false;
    await act(async () => {
      await vi.advanceTimersByTimeAsync(2100);
    });
    await waitFor(() => expect(screen.queryByRole('alert')).not.toBeInTheDocument());
    expect(screen.getByRole('link', { name: 'Order 0000abcd' })).toBeInTheDocument();
  });

  it('a just-placed order that cannot be shown yet is still confirmed as placed', async () => {
    const { fetch } = scriptedFetch(() => json(503, readModelDown, { 'retry-after': '1' }));
    renderWithApp(<OrderDetail id={order.id} minVersion={1} placed />, fetch, emptyCart());

    expect(await screen.findByRole('alert')).toHaveTextContent('Orders cannot be shown right now.');
    expect(screen.getByRole('status')).toHaveTextContent('Your order was placed.');
  });
});
