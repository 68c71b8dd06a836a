import { act, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { Order, Product } from './api/types';
import { cartReducer, emptyCart } from './cart';
import { CartPage } from './pages/Cart';
import { json, renderWithApp, scriptedFetch } from './test-utils';

const tea: Product = { sku: 'TEA-1', name: 'Green tea', unit_price: 450, currency: 'EUR', active: true };

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

async function fillAddress(user: ReturnType<typeof userEvent.setup>) {
  await user.type(screen.getByLabelText('Full name'), 'Alice');
  await user.type(screen.getByLabelText('Address'), 'Main St 1');
  await user.type(screen.getByLabelText('City'), 'Berlin');
  await user.type(screen.getByLabelText('Postal code'), '10115');
  await user.type(screen.getByLabelText(/Country code/), 'de');
}

function cartWithTea() {
  return cartReducer(emptyCart(), { type: 'add', product: tea, quantity: 2 });
}

describe('checkout', () => {
  it('a double click places one order', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const { fetch, calls } = scriptedFetch(async () => {
      await held;
      return json(201, order, { etag: '"1"' });
    });
    const user = userEvent.setup();
    renderWithApp(<CartPage />, fetch, cartWithTea());
    await fillAddress(user);

    const button = screen.getByRole('button', { name: 'Place order' });
    // Two clicks before React re-renders (and disables the button): the second must not post.
    act(() => {
      button.click();
      button.click();
    });
    release();
    await waitFor(() => expect(window.location.pathname).toBe(`/orders/${order.id}`));
    expect(calls.filter((c) => c.method === 'POST')).toHaveLength(1);
    const [post] = calls;
    expect(post?.body).toEqual({
      items: [{ sku: 'TEA-1', quantity: 2 }],
      shipping_address: { name: 'Alice', line1: 'Main St 1', city: 'Berlin', postal_code: '10115', country: 'DE' },
    });
    expect(new URLSearchParams(window.location.search).get('v')).toBe('1');
  });

  it('a retry after a failure reuses the Idempotency-Key, and the failure is explained', async () => {
    let attempt = 0;
    const { fetch, calls } = scriptedFetch(() => {
      attempt += 1;
      if (attempt === 1) return json(502, { status: 502, title: 'The API is unavailable', detail: 'the API at http://127.0.0.1:8081 cannot be reached' });
      return json(201, order);
    });
    const user = userEvent.setup();
    renderWithApp(<CartPage />, fetch, cartWithTea());
    await fillAddress(user);

    await user.click(screen.getByRole('button', { name: 'Place order' }));
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('Ordexa is temporarily unavailable.');
    expect(alert).not.toHaveTextContent('127.0.0.1');
    await user.click(screen.getByRole('button', { name: 'Place order' }));
    await waitFor(() => expect(calls).toHaveLength(2));
    const keys = calls.map((c) => c.headers['Idempotency-Key']);
    expect(keys[0]).toBeTruthy();
    expect(keys[1]).toBe(keys[0]);
  });

  it('shows field problems from the API next to the form', async () => {
    const { fetch } = scriptedFetch(() =>
      json(422, {
        type: 'https://ordexa.io/problems/validation',
        title: 'The request is not valid',
        status: 422,
        detail: '1 invalid field',
        errors: [{ field: '/shipping_address/postal_code', message: 'must not be longer than 16 characters' }],
      }),
    );
    const user = userEvent.setup();
    renderWithApp(<CartPage />, fetch, cartWithTea());
    await fillAddress(user);
    await user.click(screen.getByRole('button', { name: 'Place order' }));
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('Please check what you entered.');
    expect(alert).toHaveTextContent('Postal code: must not be longer than 16 characters');
    expect(alert).toHaveFocus();
  });
});
