// End to end: Debian's Chromium, driven by playwright-core, against the full local stack
// (`ordexa dev` + `ordexa web --dev-sign-in` on the real PostgreSQL, Kafka and Cassandra).
// `make test-e2e` (frontend/e2e/stack.sh) starts that stack and sets ORDEXA_E2E_BASE_URL.
// The scenarios run in order and share the orders they create.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { launchBrowser, shot as saveShot } from './browser.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const BASE = process.env.ORDEXA_E2E_BASE_URL;
if (!BASE) throw new Error('ORDEXA_E2E_BASE_URL is not set; run `make test-e2e`, which starts the stack and sets it');
const SHOTS = process.env.ORDEXA_E2E_SCREENSHOTS ?? join(here, '..', 'test-output', 'screenshots');
const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
// Statuses arrive by polling (2 s) after the projector caught up: allow for a slow machine.
const UPDATE_TIMEOUT = 30_000;

const run = Date.now().toString(36);
const customerA = `e2e-a-${run}`;
const customerB = `e2e-b-${run}`;
const staff = `e2e-staff-${run}`;

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

async function newPage(viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport, baseURL: BASE });
  // Cumulative layout shift of each document, as Chromium reports it (input-caused shifts excluded).
  await context.addInitScript(() => {
    window.__layoutShift = 0;
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) if (!entry.hadRecentInput) window.__layoutShift += entry.value;
    }).observe({ type: 'layout-shift', buffered: true });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  return page;
}

async function shot(page, name) {
  await saveShot(page, SHOTS, name);
}

/** Signs in with the keyboard only: Tab to the field, type, Enter. */
async function signIn(page, user, { admin = false } = {}) {
  await page.goto('/');
  const field = page.getByLabel('User name');
  await field.waitFor();
  for (let i = 0; i < 10 && !(await field.evaluate((el) => el === document.activeElement)); i++) {
    await page.keyboard.press('Tab');
  }
  assert.ok(await field.evaluate((el) => el === document.activeElement), 'the user name field is reachable with Tab');
  await page.keyboard.press('Control+A');
  await page.keyboard.type(user);
  if (admin) await page.getByLabel('Staff (admin role)').check();
  await page.keyboard.press('Enter');
  await page.getByTestId('signed-in-user').filter({ hasText: user }).waitFor();
}

async function fillAddress(page) {
  await page.getByLabel('Full name').fill('Erika Mustermann');
  await page.getByLabel('Address', { exact: true }).fill('Hauptstraße 1');
  await page.getByLabel('City').fill('Berlin');
  await page.getByLabel('Postal code').fill('10115');
  await page.getByLabel(/Country code/).fill('DE');
}

async function orderIdFromUrl(page) {
  await page.waitForURL(/\/orders\/[0-9a-f-]{36}/);
  const match = /\/orders\/([0-9a-f-]{36})/.exec(page.url());
  assert.ok(match, `an order page, got ${page.url()}`);
  return match[1];
}

/** axe-core's WCAG 2 A/AA rules (labels, contrast, names, landmarks) on the current page. */
async function assertAccessible(page, what) {
  await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } });
    return result.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  });
  assert.deepEqual(violations, [], `${what} has accessibility violations`);
}

async function assertNoHorizontalScroll(page, what) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `${what} scrolls sideways by ${overflow}px on a phone`);
}

describe('Ordexa in a real browser', () => {
  let customerPage;
  let firstOrder;

  it('a customer places an order (double click included) and sees it PENDING', async () => {
    customerPage = await newPage();
    const page = customerPage;
    await signIn(page, customerA);
    await page.getByRole('heading', { name: 'Catalog' }).waitFor();
    await page.getByRole('button', { name: 'Add Coffee beans, 1 kg to cart' }).click();
    await page.getByRole('button', { name: 'Add Ceramic mug to cart' }).click();
    await page.getByRole('button', { name: 'Add Ceramic mug to cart' }).click();
    await shot(page, '01-catalog');
    await assertAccessible(page, 'the catalog');

    await page.getByRole('link', { name: /^Cart/ }).click();
    await page.getByRole('heading', { name: 'Cart' }).waitFor();
    assert.equal(await page.getByLabel('Quantity of Ceramic mug').inputValue(), '2');
    await fillAddress(page);
    assert.match(await page.getByTestId('cart-total').textContent(), /48[.,]50/);
    await shot(page, '02-cart');
    await assertAccessible(page, 'the cart');

    await page.getByRole('button', { name: 'Place order' }).dblclick();
    firstOrder = await orderIdFromUrl(page);
    await page.getByTestId('order-status').filter({ hasText: 'Pending' }).waitFor();
    assert.match(await page.locator('.facts .total').textContent(), /48[.,]50/);
    await shot(page, '03-order-pending');
    await assertAccessible(page, 'the order page');

    await page.getByRole('link', { name: 'My orders' }).click();
    const rows = page.locator('tbody tr[data-order-id]');
    await rows.first().waitFor();
    assert.equal(await rows.count(), 1, 'the double click placed exactly one order');
    assert.equal(await rows.first().getAttribute('data-order-id'), firstOrder);
    await shot(page, '04-my-orders');
    await assertAccessible(page, 'my orders');
  });

  it('staff confirms it, and the customer sees CONFIRMED without reloading', async () => {
    // The customer waits on the order page; a marker on window proves it is never reloaded.
    await customerPage.goto(`/orders/${firstOrder}`);
    await customerPage.getByTestId('order-status').filter({ hasText: 'Pending' }).waitFor();
    await customerPage.evaluate(() => {
      window.__notReloaded = true;
    });

    const staffPage = await newPage();
    await signIn(staffPage, staff, { admin: true });
    await staffPage.getByRole('heading', { name: 'Orders by status' }).waitFor();
    const row = staffPage.locator(`tr[data-order-id="${firstOrder}"]`);
    await row.waitFor({ timeout: UPDATE_TIMEOUT });
    assert.equal(await row.getAttribute('data-status'), 'PENDING');
    await shot(staffPage, '05-staff-orders');
    await assertAccessible(staffPage, 'the staff orders page');
    await row.getByRole('button', { name: /^Confirm order/ }).click();
    await staffPage.getByRole('status').filter({ hasText: 'confirmed' }).waitFor();

    await staffPage.getByRole('button', { name: 'Confirmed', exact: true }).click();
    await staffPage.locator(`tr[data-order-id="${firstOrder}"][data-status="CONFIRMED"]`).waitFor({ timeout: UPDATE_TIMEOUT });

    await customerPage.getByTestId('order-status').filter({ hasText: 'Confirmed' }).waitFor({ timeout: UPDATE_TIMEOUT });
    assert.equal(await customerPage.evaluate(() => window.__notReloaded), true, 'the customer page was not reloaded');
    await shot(customerPage, '06-order-confirmed');

    await staffPage.getByRole('link', { name: 'Staff: catalog' }).click();
    await staffPage.getByRole('heading', { name: 'Catalog management' }).waitFor();
    await staffPage.locator('form[data-sku="MUG-CERAMIC"]').waitFor();
    await shot(staffPage, '07-staff-catalog');
    await assertAccessible(staffPage, 'the staff catalog page');
    await staffPage.context().close();
  });

  it('staff adds and reprices a product, and customers see the new price', async () => {
    const sku = `E2E-${run}`.toUpperCase();
    const staffPage = await newPage();
    await signIn(staffPage, staff, { admin: true });
    await staffPage.getByRole('link', { name: 'Staff: catalog' }).click();
    const add = staffPage.getByRole('form', { name: 'Add a product' });
    await add.getByLabel('SKU').fill(sku);
    await add.getByLabel('Name').fill('Espresso cups, set of 2');
    await add.getByLabel('Price').fill('abc');
    await add.getByRole('button', { name: 'Add product' }).click();
    assert.match(await add.getByRole('alert').textContent(), /Price: an amount like 12\.50/);
    await add.getByLabel('Price').fill('15.00');
    await add.getByRole('button', { name: 'Add product' }).click();
    const row = staffPage.locator(`form[data-sku="${sku}"]`);
    await row.waitFor();
    await row.getByLabel('Price').fill('17.25');
    await row.getByRole('button', { name: 'Save' }).click();
    await staffPage.getByRole('status').filter({ hasText: 'saved' }).waitFor();
    await staffPage.locator(`form[data-sku="${sku}"] h3`).filter({ hasText: '17.25' }).waitFor();
    await staffPage.context().close();

    await customerPage.getByRole('link', { name: 'Catalog' }).click();
    const card = customerPage.locator(`.card[data-sku="${sku}"]`);
    await card.waitFor();
    assert.match(await card.textContent(), /17[.,]25/);
  });

  it('a customer edits a PENDING order, then cancels it', async () => {
    const page = customerPage;
    await page.getByRole('link', { name: 'Catalog' }).click();
    await page.getByRole('button', { name: 'Add French press, 1 l to cart' }).click();
    await page.getByRole('link', { name: /^Cart/ }).click();
    // The address of the first order is remembered.
    assert.equal(await page.getByLabel('City').inputValue(), 'Berlin');
    await page.getByRole('button', { name: 'Place order' }).click();
    const second = await orderIdFromUrl(page);
    await page.getByTestId('order-status').filter({ hasText: 'Pending' }).waitFor();

    await page.getByRole('button', { name: 'Edit order' }).click();
    await page.getByLabel('French press, 1 l').fill('3');
    await page.getByLabel('City').fill('Hamburg');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('status').filter({ hasText: 'saved' }).waitFor();
    assert.match(await page.locator('address').textContent(), /Hamburg/);
    assert.match(await page.locator('.facts .total').textContent(), /119[.,]70/);

    await page.getByRole('button', { name: 'Cancel order' }).click();
    await page.getByRole('button', { name: 'Yes, cancel the order' }).click();
    await page.getByTestId('order-status').filter({ hasText: 'Cancelled' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Edit order' }).count(), 0, 'a cancelled order cannot be edited');
    await shot(page, '08-order-cancelled');

    await page.getByRole('link', { name: 'My orders' }).click();
    await page.locator(`tr[data-order-id="${second}"][data-status="CANCELLED"]`).waitFor({ timeout: UPDATE_TIMEOUT });
    assert.equal(await page.locator(`tr[data-order-id="${firstOrder}"]`).getAttribute('data-status'), 'CONFIRMED');
    // Newest first.
    assert.equal(await page.locator('tbody tr[data-order-id]').first().getAttribute('data-order-id'), second);
  });

  it('a second customer sees none of the first one’s orders', async () => {
    const page = await newPage();
    await signIn(page, customerB);
    await page.getByRole('link', { name: 'My orders' }).click();
    await page.getByText('No orders yet.').waitFor();
    assert.equal(await page.locator('tbody tr[data-order-id]').count(), 0);

    await page.goto(`/orders/${firstOrder}`);
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.textContent(), /could not find that/i);
    assert.equal(await page.getByText(customerA).count(), 0, 'nothing of the first customer is shown');
    await shot(page, '09-other-customer');
    await page.context().close();
  });

  it('works on a phone-sized screen', async () => {
    const page = await newPage({ width: 390, height: 844 });
    await signIn(page, customerA);
    await page.getByRole('heading', { name: 'Catalog' }).waitFor();
    await page.locator('.card[data-sku]').first().waitFor();
    await assertNoHorizontalScroll(page, 'the catalog');
    await shot(page, '10-phone-catalog');
    await page.getByRole('link', { name: 'My orders' }).click();
    await page.locator('tbody tr[data-order-id]').first().waitFor();
    await assertNoHorizontalScroll(page, 'my orders');
    await shot(page, '11-phone-my-orders');
    await page.goto(`/orders/${firstOrder}`);
    await page.getByTestId('order-status').waitFor();
    await assertNoHorizontalScroll(page, 'the order page');
    await shot(page, '12-phone-order');
    await page.context().close();
  });

  it('pages do not jump while they load', async () => {
    const page = await newPage();
    await signIn(page, customerA);
    for (const [path, ready] of [
      ['/', '.card[data-sku]'],
      ['/orders', 'tbody tr[data-order-id]'],
      [`/orders/${firstOrder}`, '[data-testid="order-status"]'],
    ]) {
      await page.goto(path);
      await page.locator(ready).first().waitFor();
      await page.waitForTimeout(2500); // one poll refresh included
      const shift = await page.evaluate(() => window.__layoutShift);
      assert.ok(shift < 0.1, `${path}: cumulative layout shift ${shift.toFixed(3)} (0.1 is the limit of "good")`);
    }
    await page.context().close();
  });

  it('the sign-in page is accessible', async () => {
    const page = await newPage();
    await page.goto('/');
    await page.getByLabel('User name').waitFor();
    await shot(page, '00-sign-in');
    await assertAccessible(page, 'the sign-in page');
    await page.context().close();
    await customerPage.context().close();
  });
});
