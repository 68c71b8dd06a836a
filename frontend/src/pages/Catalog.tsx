import { useCallback, useEffect, useState } from 'react';
import type { Product } from '../api/types';
import { useApp } from '../app-context';
import { ProblemMessage } from '../components/ProblemMessage';
import { formatMoney } from '../money';
import { humanizeError, type HumanProblem } from '../problems';

export function Catalog() {
  const { api, dispatchCart, cart, announce } = useApp();
  const [products, setProducts] = useState<Product[] | null>(null);
  const [problem, setProblem] = useState<HumanProblem | null>(null);

  const load = useCallback((signal?: AbortSignal) => {
    api
      .listProducts(signal)
      .then((list) => {
        setProducts(list.items);
        setProblem(null);
      })
      .catch((err: unknown) => {
        if (!signal?.aborted) setProblem(humanizeError(err));
      });
  }, [api]);

  useEffect(() => {
    const controller = new AbortController();
    load(controller.signal);
    return () => controller.abort();
  }, [load]);

  const inCart = (sku: string) => cart.lines.find((l) => l.sku === sku)?.quantity ?? 0;

  return (
    <section aria-labelledby="catalog-title">
      <h1 id="catalog-title">Catalog</h1>
      <ProblemMessage problem={problem} onRetry={() => load()} />
      {products === null && !problem && <ul className="grid" aria-busy="true">{[0, 1, 2, 3].map((i) => <li key={i} className="card skeleton" />)}</ul>}
      {products !== null && products.length === 0 && <p>The catalog is empty.</p>}
      {products !== null && products.length > 0 && (
        <ul className="grid">
          {products.map((product) => (
            <li key={product.sku} className="card" data-sku={product.sku}>
              <h2>{product.name}</h2>
              <p className="muted">SKU {product.sku}</p>
              <p className="price">{formatMoney(product.unit_price, product.currency)}</p>
              {product.active ? (
                <>
                  {/* The line is always there, so the card does not grow on the first add. */}
                  <p className="muted">{inCart(product.sku) > 0 ? `${inCart(product.sku)} in cart` : '\u00a0'}</p>
                  <button
                    type="button"
                    onClick={() => {
                      dispatchCart({ type: 'add', product });
                      announce(`Added ${product.name} to the cart.`);
                    }}
                  >
                    Add<span className="visually-hidden"> {product.name}</span> to cart
                  </button>
                </>
              ) : (
                <p className="muted">Not available</p>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
