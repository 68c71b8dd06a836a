import { act, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Order, OrderStatus } from './api/types';
import { emptyCart } from './cart';
import { MyOrders } from './pages/MyOrders';
import { json, renderWithApp, scriptedFetch } from './test-utils';

function order(n: number, status: OrderStatus = 'PENDING'): Order {
  return {
    id: `0191a7c2-7e1b-7000-8000-0000000000${String(n).padStart(2, '0')}`,
    user_id: 'alice',
    status,
    items: [{ sku: 'TEA-1', name: 'Green tea', quantity: 1, unit_price: 450, line_total: 450 }],
    currency: 'EUR',
    total: 450,
    shipping_address: { name: 'A', line1: 'B', city: 'C', postal_code: '1', country: 'DE' },
    version: 1,
    created_at: '2026-11-26T12:00:00Z',
    updated_at: '2026-11-26T12:00:00Z',
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('my orders', () => {
  it('pages forward with the API token and back again', async () => {
    const { fetch, calls } = scriptedFetch((call) => {
      const token = new URL(call.url, 'http://x').searchParams.get('page_token');
      if (token === null) return json(200, { items: [order(1), order(2)], next_page_token: 'p2' });
      return json(200, { items: [order(3)], next_page_token: null });
    });
    const user = userEvent.setup();
    renderWithApp(<MyOrders />, fetch, emptyCart());

    expect(await screen.findByRole('link', { name: 'Order 00000001' })).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Older →' }));
    expect(await screen.findByRole('link', { name: 'Order 00000003' })).toBeInTheDocument();
    expect(screen.queryByRole('link', { name: 'Order 00000001' })).not.toBeInTheDocument();
    expect(calls.at(-1)?.url).toContain('page_token=p2');
    expect(screen.getByRole('button', { name: 'Older →' })).toBeDisabled();

    await user.click(screen.getByRole('button', { name: '← Newer' }));
    expect(await screen.findByRole('link', { name: 'Order 00000001' })).toBeInTheDocument();
    expect(calls.at(-1)?.url).not.toContain('page_token');
  });

  it('shows a status change without a reload', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    let status: OrderStatus = 'PENDING';
    const { fetch } = scriptedFetch(() => json(200, { items: [order(1, status)], next_page_token: null }));
    renderWithApp(<MyOrders />, fetch, emptyCart());

    const row = await screen.findByRole('row', { name: /00000001/ });
    expect(row).toHaveTextContent('Pending');
    status = 'CONFIRMED';
    await act(async () => {
      await vi.advanceTimersByTimeAsync(2100);
    });
    await waitFor(() => expect(screen.getByRole('row', { name: /00000001/ })).toHaveTextContent('Confirmed'));
  });

  it('explains a failed load and recovers on retry', async () => {
    let fail = true;
    const { fetch } = scriptedFetch(() =>
      fail ? json(503, { status: 503, title: 'Service unavailable', detail: 'the database is unavailable' }) : json(200, { items: [order(1)] }),
    );
    const user = userEvent.setup();
    renderWithApp(<MyOrders />, fetch, emptyCart());
    expect(await screen.findByRole('alert')).toHaveTextContent('Ordexa is temporarily unavailable.');
    fail = false;
    await user.click(screen.getByRole('button', { name: 'Try again' }));
    expect(await screen.findByRole('link', { name: 'Order 00000001' })).toBeInTheDocument();
    expect(screen.queryByRole('alert')).not.toBeInTheDocument();
  });
});
