import { describe, expect, it } from 'vitest';
import type { Product } from './api/types';
import { cartCount, cartItems, cartReducer, cartTotals, checkoutIdempotencyKey, emptyCart, loadCart, MAX_QUANTITY, newKey, saveCart } from './cart';
import type { KeySource } from './cart';

const tea: Product = { sku: 'TEA-1', name: 'Green tea', unit_price: 450, currency: 'EUR', active: true };
const mug: Product = { sku: 'MUG-1', name: 'Mug', unit_price: 1200, currency: 'EUR', active: true };
const yen: Product = { sku: 'JP-1', name: 'Sencha', unit_price: 900, currency: 'JPY', active: true };
const gone: Product = { sku: 'OLD-1', name: 'Retired', unit_price: 100, currency: 'EUR', active: false };

describe('cart', () => {
  it('adds products, merging repeated adds into one line', () => {
    let cart = cartReducer(emptyCart(), { type: 'add', product: tea });
    cart = cartReducer(cart, { type: 'add', product: mug, quantity: 2 });
    cart = cartReducer(cart, { type: 'add', product: tea });
    expect(cart.lines.map((l) => [l.sku, l.quantity])).toEqual([
      ['TEA-1', 2],
      ['MUG-1', 2],
    ]);
    expect(cartCount(cart)).toBe(4);
    expect(cartItems(cart)).toEqual([
      { sku: 'TEA-1', quantity: 2 },
      { sku: 'MUG-1', quantity: 2 },
    ]);
  });

  it('refuses inactive products and keeps quantities within 1..MAX_QUANTITY', () => {
    let cart = cartReducer(emptyCart(), { type: 'add', product: gone });
    expect(cart.lines).toHaveLength(0);
    cart = cartReducer(cart, { type: 'add', product: tea, quantity: 5000 });
    expect(cart.lines[0]?.quantity).toBe(MAX_QUANTITY);
    cart = cartReducer(cart, { type: 'setQuantity', sku: 'TEA-1', quantity: 2.7 });
    expect(cart.lines[0]?.quantity).toBe(2);
    cart = cartReducer(cart, { type: 'setQuantity', sku: 'TEA-1', quantity: 0 });
    expect(cart.lines).toHaveLength(0);
  });

  it('totals per currency, so a mixed cart is visible before the API refuses it', () => {
    let cart = cartReducer(emptyCart(), { type: 'add', product: tea, quantity: 3 });
    cart = cartReducer(cart, { type: 'add', product: mug });
    expect(cartTotals(cart)).toEqual([{ currency: 'EUR', total: 3 * 450 + 1200 }]);
    cart = cartReducer(cart, { type: 'add', product: yen });
    expect(cartTotals(cart)).toEqual([
      { currency: 'EUR', total: 2550 },
      { currency: 'JPY', total: 900 },
    ]);
  });

  it('keeps the checkout key for the same cart and address, and changes it when either changes', () => {
    const address = { name: 'A', line1: 'B 1', city: 'C', postal_code: '1', country: 'DE' };
    const cart = cartReducer(emptyCart(), { type: 'add', product: tea });
    const key = checkoutIdempotencyKey(cart, address);
    expect(checkoutIdempotencyKey(cart, { ...address })).toBe(key);
    expect(checkoutIdempotencyKey(cart, { ...address, city: 'D' })).not.toBe(key);
    const changed = cartReducer(cart, { type: 'setQuantity', sku: 'TEA-1', quantity: 2 });
    expect(checkoutIdempotencyKey(changed, address)).not.toBe(key);
    // A no-op keeps the key: nothing about the order changed.
    expect(cartReducer(cart, { type: 'remove', sku: 'NOT-THERE' }).checkoutKey).toBe(cart.checkoutKey);
    expect(cartReducer(cart, { type: 'clear' }).checkoutKey).not.toBe(cart.checkoutKey);
  });

  it('persists per user and survives corrupt storage', () => {
    const cart = cartReducer(emptyCart(), { type: 'add', product: tea, quantity: 2 });
    saveCart('alice', cart);
    expect(loadCart('alice')).toEqual(cart);
    expect(loadCart('bob').lines).toEqual([]);
    localStorage.setItem('ordexa.cart.alice', '{not json');
    expect(loadCart('alice').lines).toEqual([]);
    localStorage.setItem('ordexa.cart.alice', JSON.stringify({ lines: [{ sku: 'X', quantity: -1 }], checkoutKey: 'k' }));
    expect(loadCart('alice')).toEqual({ lines: [], checkoutKey: 'k' });
  });
});

describe('checkout keys', () => {
  it('are version 4 UUIDs where crypto.randomUUID is missing (plain HTTP off localhost)', () => {
    const insecure: KeySource = { getRandomValues: (array) => crypto.getRandomValues(array) };
    const keys = new Set(Array.from({ length: 50 }, () => newKey(insecure)));
    expect(keys.size).toBe(50);
    for (const key of keys) expect(key).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('come from crypto.randomUUID where it exists', () => {
    const secure: KeySource = {
      getRandomValues: (array) => crypto.getRandomValues(array),
      randomUUID: () => '00000000-0000-4000-8000-000000000001',
    };
    expect(newKey(secure)).toBe('00000000-0000-4000-8000-000000000001');
  });
});
