import { useCallback, useEffect, useState, type FormEvent } from 'react';
import type { Product } from '../api/types';
import { useApp } from '../app-context';
import { ProblemMessage } from '../components/ProblemMessage';
import { formatMoney, minorToInput, parseMoney } from '../money';
import { humanizeError, type HumanProblem } from '../problems';

interface Draft {
  sku: string;
  name: string;
  price: string;
  currency: string;
  active: boolean;
}

const NEW_DRAFT: Draft = { sku: '', name: '', price: '', currency: 'EUR', active: true };

function toProduct(draft: Draft): Product | HumanProblem {
  const currency = draft.currency.trim().toUpperCase();
  const fields: string[] = [];
  if (!/^[A-Z]{3}$/.test(currency)) fields.push('Currency: three letters, e.g. EUR');
  const price = /^[A-Z]{3}$/.test(currency) ? parseMoney(draft.price, currency) : null;
  if (price === null) fields.push(`Price: an amount like 12.50`);
  if (!draft.name.trim()) fields.push('Name: must not be empty');
  if (!draft.sku.trim()) fields.push('SKU: must not be empty');
  if (fields.length > 0 || price === null) return { title: 'Please check what you entered.', advice: 'These need attention:', fields, status: 422 };
  return { sku: draft.sku.trim(), name: draft.name.trim(), unit_price: price, currency, active: draft.active };
}

function isProduct(value: Product | HumanProblem): value is Product {
  return 'sku' in value;
}

export function StaffCatalog() {
  const { api, announce } = useApp();
  const [products, setProducts] = useState<Product[] | null>(null);
  const [problem, setProblem] = useState<HumanProblem | null>(null);

  const load = useCallback(() => {
    api
      .listProducts()
      .then((list) => {
        setProducts(list.items);
        setProblem(null);
      })
      .catch((err: unknown) => setProblem(humanizeError(err)));
  }, [api]);
  useEffect(load, [load]);

  const saved = (product: Product, verb: string) => {
    setProducts((list) => {
      const rest = (list ?? []).filter((p) => p.sku !== product.sku);
      return [...rest, product].sort((a, b) => a.sku.localeCompare(b.sku));
    });
    announce(`${product.name} ${verb}.`);
  };

  return (
    <section aria-labelledby="staff-catalog-title">
      <h1 id="staff-catalog-title">Catalog management</h1>
      <ProblemMessage problem={problem} onRetry={load} />
      <ProductForm title="Add a product" initial={NEW_DRAFT} isNew onSubmit={async (p) => saved(await api.createProduct(p), 'added')} />
      <h2>Products</h2>
      {products === null && !problem && <div className="skeleton block-skeleton" aria-busy="true" />}
      {products?.map((product) => (
        <ProductForm
          key={`${product.sku}-${product.name}-${product.unit_price}-${product.currency}-${product.active}`}
          title={`${product.name} (${product.sku}) — ${formatMoney(product.unit_price, product.currency)}${product.active ? '' : ', inactive'}`}
          initial={{ sku: product.sku, name: product.name, price: minorToInput(product.unit_price, product.currency), currency: product.currency, active: product.active }}
          onSubmit={async (p) => saved(await api.updateProduct(p), 'saved')}
        />
      ))}
    </section>
  );
}

function ProductForm({ title, initial, isNew = false, onSubmit }: {
  title: string;
  initial: Draft;
  isNew?: boolean;
  onSubmit: (product: Product) => Promise<void>;
}) {
  const [draft, setDraft] = useState(initial);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<HumanProblem | null>(null);
  const id = isNew ? 'new' : `p-${initial.sku}`;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const product = toProduct(draft);
    if (!isProduct(product)) {
      setProblem(product);
      return;
    }
    setBusy(true);
    setProblem(null);
    try {
      await onSubmit(product);
      if (isNew) setDraft(NEW_DRAFT);
    } catch (err) {
      setProblem(humanizeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="product-form panel" onSubmit={submit} aria-label={title} data-sku={initial.sku || undefined}>
      <h3 className={isNew ? '' : 'product-title'}>{title}</h3>
      <fieldset disabled={busy}>
        <legend className="visually-hidden">{title}</legend>
        <div className="field">
          <label htmlFor={`${id}-sku`}>SKU</label>
          <input id={`${id}-sku`} value={draft.sku} readOnly={!isNew} required onChange={(e) => setDraft({ ...draft, sku: e.target.value })} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-name`}>Name</label>
          <input id={`${id}-name`} value={draft.name} required onChange={(e) => setDraft({ ...draft, name: e.target.value })} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-price`}>Price</label>
          <input id={`${id}-price`} value={draft.price} inputMode="decimal" required onChange={(e) => setDraft({ ...draft, price: e.target.value })} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-currency`}>Currency</label>
          <input id={`${id}-currency`} value={draft.currency} maxLength={3} required onChange={(e) => setDraft({ ...draft, currency: e.target.value })} />
        </div>
        <label className="check">
          <input type="checkbox" checked={draft.active} onChange={(e) => setDraft({ ...draft, active: e.target.checked })} /> Can be ordered
        </label>
        <button type="submit">{isNew ? 'Add product' : 'Save'}</button>
      </fieldset>
      <ProblemMessage problem={problem} focus />
    </form>
  );
}
