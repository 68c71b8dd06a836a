import { useRef, useState, type FormEvent } from 'react';
import type { ShippingAddress } from '../api/types';
import { useApp } from '../app-context';
import { cartItems, cartTotals, checkoutIdempotencyKey, MAX_QUANTITY } from '../cart';
import { AddressFields, cleanAddress, EMPTY_ADDRESS } from '../components/AddressFields';
import { ProblemMessage } from '../components/ProblemMessage';
import { formatMoney } from '../money';
import { humanizeError, type HumanProblem } from '../problems';
import { Link, navigate } from '../router';

const ADDRESS_KEY = 'ordexa.address';

function loadAddress(user: string): ShippingAddress {
  try {
    const raw = localStorage.getItem(`${ADDRESS_KEY}.${user}`);
    return raw ? { ...EMPTY_ADDRESS, ...(JSON.parse(raw) as ShippingAddress) } : EMPTY_ADDRESS;
  } catch {
    return EMPTY_ADDRESS;
  }
}

export function CartPage() {
  const { api, cart, dispatchCart, session, announce } = useApp();
  const [address, setAddress] = useState<ShippingAddress>(() => loadAddress(session.user));
  const [problem, setProblem] = useState<HumanProblem | null>(null);
  const [placing, setPlacing] = useState(false);
  // A second submit while the first is in flight is dropped even before React re-renders.
  const submitting = useRef(false);

  const totals = cartTotals(cart);
  const mixed = totals.length > 1;

  const placeOrder = async (event: FormEvent) => {
    event.preventDefault();
    if (submitting.current || cart.lines.length === 0 || mixed) return;
    submitting.current = true;
    setPlacing(true);
    setProblem(null);
    const shipping = cleanAddress(address);
    try {
      const order = await api.createOrder(cartItems(cart), shipping, checkoutIdempotencyKey(cart, shipping));
      localStorage.setItem(`${ADDRESS_KEY}.${session.user}`, JSON.stringify(shipping));
      dispatchCart({ type: 'clear' });
      announce('Your order was placed.');
      navigate(`/orders/${order.id}?v=${order.version}&placed=1`);
    } catch (err) {
      // The cart and its key stay: trying again returns this same order if it was created.
      setProblem(humanizeError(err));
    } finally {
      submitting.current = false;
      setPlacing(false);
    }
  };

  if (cart.lines.length === 0) {
    return (
      <section aria-labelledby="cart-title">
        <h1 id="cart-title">Cart</h1>
        <p>
          Your cart is empty. <Link href="/">Browse the catalog</Link>.
        </p>
      </section>
    );
  }

  return (
    <section aria-labelledby="cart-title">
      <h1 id="cart-title">Cart</h1>
      <div className="table-wrap">
        <table className="lines">
          <caption className="visually-hidden">Items in your cart</caption>
          <thead>
            <tr>
              <th scope="col">Item</th>
              <th scope="col">Quantity</th>
              <th scope="col" className="num">Price</th>
              <th scope="col">
                <span className="visually-hidden">Remove</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {cart.lines.map((line) => (
              <tr key={line.sku} data-sku={line.sku}>
                <th scope="row">
                  {line.name}
                  <span className="muted block">{formatMoney(line.unit_price, line.currency)} each</span>
                </th>
                <td>
                  <input
                    type="number"
                    className="qty"
                    min={1}
                    max={MAX_QUANTITY}
                    value={line.quantity}
                    aria-label={`Quantity of ${line.name}`}
                    disabled={placing}
                    onChange={(e) => dispatchCart({ type: 'setQuantity', sku: line.sku, quantity: Number(e.target.value) })}
                  />
                </td>
                <td className="num">{formatMoney(line.unit_price * line.quantity, line.currency)}</td>
                <td>
                  <button
                    type="button"
                    className="secondary"
                    disabled={placing}
                    aria-label={`Remove ${line.name} from cart`}
                    onClick={() => {
                      dispatchCart({ type: 'remove', sku: line.sku });
                      announce(`Removed ${line.name} from the cart.`);
                    }}
                  >
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
          <tfoot>
            {totals.map(({ currency, total }) => (
              <tr key={currency}>
                <th scope="row" colSpan={2}>
                  Total
                </th>
                <td className="num total" data-testid="cart-total">
                  {formatMoney(total, currency)}
                </td>
                <td />
              </tr>
            ))}
          </tfoot>
        </table>
      </div>
      {mixed && (
        <p className="problem" role="alert">
          These items are priced in different currencies, and one order has one currency. Remove the items in the other currency to continue.
        </p>
      )}
      <form onSubmit={placeOrder} className="form checkout" aria-labelledby="checkout-title">
        <h2 id="checkout-title">Checkout</h2>
        <AddressFields idPrefix="ship" address={address} onChange={setAddress} disabled={placing} />
        <ProblemMessage problem={problem} focus />
        <button type="submit" disabled={placing || mixed} aria-busy={placing}>
          {placing ? 'Placing order…' : 'Place order'}
        </button>
        <p className="hint">Prices are confirmed when the order is placed.</p>
      </form>
    </section>
  );
}
