// The cart: a pure reducer (tested on its own) plus persistence per user in localStorage, so a
// reload or a second tab keeps it. Prices shown in the cart come from the catalog; the server
// prices the order again when it is placed.

import type { ItemRequest, Product } from './api/types';

export const MAX_QUANTITY = 1000;
export const MAX_LINES = 100;

export interface CartLine {
  sku: string;
  name: string;
  unit_price: number;
  currency: string;
  quantity: number;
}

export interface Cart {
  lines: CartLine[];
  /**
   * The Idempotency-Key of the checkout in progress: created when the cart first gets an
   * item, kept across retries and double clicks, replaced after an order was placed or the
   * cart changed (a changed cart is a different order).
   */
  checkoutKey: string;
}

export type CartAction =
  | { type: 'add'; product: Product; quantity?: number }
  | { type: 'setQuantity'; sku: string; quantity: number }
  | { type: 'remove'; sku: string }
  | { type: 'clear' };

/** The parts of `crypto` a key is made from. */
export interface KeySource {
  getRandomValues(array: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer>;
  randomUUID?: () => string;
}

/**
 * A random (version 4) UUID. `crypto.randomUUID` exists only in secure contexts (HTTPS or
 * localhost); a frontend served over plain HTTP on any other host, such as a cluster's
 * NodePort, has `crypto.getRandomValues` alone, which is just as random.
 */
export function newKey(random: KeySource = crypto): string {
  if (typeof random.randomUUID === 'function') return random.randomUUID();
  const bytes = random.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40; // version 4
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function emptyCart(): Cart {
  return { lines: [], checkoutKey: newKey() };
}

function clamp(quantity: number): number {
  if (!Number.isFinite(quantity)) return 1;
  return Math.min(MAX_QUANTITY, Math.max(1, Math.trunc(quantity)));
}

export function cartReducer(cart: Cart, action: CartAction): Cart {
  switch (action.type) {
    case 'add': {
      const { product } = action;
      if (!product.active) return cart;
      const quantity = clamp(action.quantity ?? 1);
      const existing = cart.lines.find((l) => l.sku === product.sku);
      if (!existing && cart.lines.length >= MAX_LINES) return cart;
      const lines = existing
        ? cart.lines.map((l) => (l.sku === product.sku ? { ...l, quantity: clamp(l.quantity + quantity) } : l))
        : [
            ...cart.lines,
            { sku: product.sku, name: product.name, unit_price: product.unit_price, currency: product.currency, quantity },
          ];
      return { lines, checkoutKey: newKey() };
    }
    case 'setQuantity': {
      if (!cart.lines.some((l) => l.sku === action.sku)) return cart;
      if (action.quantity <= 0) return cartReducer(cart, { type: 'remove', sku: action.sku });
      const quantity = clamp(action.quantity);
      return {
        lines: cart.lines.map((l) => (l.sku === action.sku ? { ...l, quantity } : l)),
        checkoutKey: newKey(),
      };
    }
    case 'remove':
      if (!cart.lines.some((l) => l.sku === action.sku)) return cart;
      return { lines: cart.lines.filter((l) => l.sku !== action.sku), checkoutKey: newKey() };
    case 'clear':
      return emptyCart();
  }
}

export function cartCount(cart: Cart): number {
  return cart.lines.reduce((n, l) => n + l.quantity, 0);
}

/** Totals per currency (the API refuses mixed currencies; the cart says so before it tries). */
export function cartTotals(cart: Cart): { currency: string; total: number }[] {
  const totals = new Map<string, number>();
  for (const line of cart.lines) totals.set(line.currency, (totals.get(line.currency) ?? 0) + line.unit_price * line.quantity);
  return [...totals].map(([currency, total]) => ({ currency, total }));
}

export function cartItems(cart: Cart): ItemRequest[] {
  return cart.lines.map(({ sku, quantity }) => ({ sku, quantity }));
}

const storageKey = (user: string) => `ordexa.cart.${user}`;

export function loadCart(user: string, storage: Storage = localStorage): Cart {
  try {
    const raw = storage.getItem(storageKey(user));
    if (!raw) return emptyCart();
    const parsed = JSON.parse(raw) as Partial<Cart>;
    if (!Array.isArray(parsed.lines) || typeof parsed.checkoutKey !== 'string') return emptyCart();
    const lines = parsed.lines.filter(
      (l): l is CartLine =>
        typeof l?.sku === 'string' &&
        typeof l.name === 'string' &&
        Number.isInteger(l.unit_price) &&
        typeof l.currency === 'string' &&
        Number.isInteger(l.quantity) &&
        l.quantity > 0,
    );
    return { lines, checkoutKey: parsed.checkoutKey };
  } catch {
    return emptyCart();
  }
}

export function saveCart(user: string, cart: Cart, storage: Storage = localStorage): void {
  try {
    storage.setItem(storageKey(user), JSON.stringify(cart));
  } catch {
    // Storage full or disabled: the cart still works for this page's life.
  }
}

/** FNV-1a, 32 bits: a short, stable fingerprint (not a security measure). */
function fingerprint(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, '0');
}

/**
 * The Idempotency-Key for placing this cart with this address: the same cart and address give
 * the same key (a double click or a retry is answered with the first order), any change gives
 * a new one (a different order, never a 422 for a reused key).
 */
export function checkoutIdempotencyKey(cart: Cart, address: unknown): string {
  return `${cart.checkoutKey}.${fingerprint(JSON.stringify(address))}`;
}
