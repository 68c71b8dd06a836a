// End to end on the single-node Kubernetes cluster (`make cluster-e2e`, infra/cluster-e2e.sh):
// Debian's Chromium, driven by playwright-core, against the frontend the operator deployed from
// an OrderingSystem. There is no dev sign-in there: people paste a bearer token, as they would
// one from an identity provider; the script mints them with `ordexa token` and the Secret's key.
// The catalog starts empty (the migration Job seeds nothing), so staff adds a product first.

import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { launchBrowser, shot as saveShot } from './browser.mjs';

const here = dirname(fileURLToPath(import.meta.url));
function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run \`make cluster-e2e\`, which sets it`);
  return value;
}
const BASE = required('ORDEXA_E2E_BASE_URL');
const CUSTOMER_TOKEN = required('ORDEXA_E2E_CUSTOMER_TOKEN');
const STAFF_TOKEN = required('ORDEXA_E2E_STAFF_TOKEN');
const RUN = required('ORDEXA_E2E_RUN');
const SHOTS = process.env.ORDEXA_E2E_SCREENSHOTS ?? join(here, '..', 'test-output', 'cluster');
// Every step crosses the cluster's pods (web → api → PostgreSQL; relay → Kafka → projector →
// Cassandra), on two cores shared with the servers and the cluster itself.
const UPDATE_TIMEOUT = 60_000;

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, baseURL: BASE });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  return page;
}

async function shot(page, name) {
  await saveShot(page, SHOTS, name);
}

/** The production sign-in: paste the access token. */
async function signInWithToken(page, token, user) {
  await page.goto('/');
  const field = page.getByLabel('Access token');
  await field.waitFor();
  await field.fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('signed-in-user').filter({ hasText: user }).waitFor();
}

describe('Ordexa deployed by the operator', () => {
  const sku = `CLUSTER-${RUN}`.toUpperCase();
  const customer = `cluster-customer-${RUN}`;
  const staff = `cluster-staff-${RUN}`;
  let orderId;

  it('staff adds a product through the deployed frontend', async () => {
    const page = await newPage();
    await signInWithToken(page, STAFF_TOKEN, staff);
    await page.getByRole('link', { name: 'Staff: catalog' }).click();
    const add = page.getByRole('form', { name: 'Add a product' });
    await add.getByLabel('SKU').fill(sku);
    await add.getByLabel('Name').fill('Cluster-roasted beans');
    await add.getByLabel('Price').fill('21.40');
    await add.getByRole('button', { name: 'Add product' }).click();
    await page.locator(`form[data-sku="${sku}"]`).waitFor();
    await shot(page, '01-staff-catalog');
    await page.context().close();
  });

  it('a customer orders it and sees it PENDING', async () => {
    const page = await newPage();
    await signInWithToken(page, CUSTOMER_TOKEN, customer);
    const card = page.locator(`.card[data-sku="${sku}"]`);
    await card.waitFor({ timeout: UPDATE_TIMEOUT });
    await card.getByRole('button', { name: /^Add .* to cart$/ }).click();
    await page.getByRole('link', { name: /^Cart/ }).click();
    await page.getByRole('heading', { name: 'Cart' }).waitFor();
    await page.getByLabel('Full name').fill('Erika Mustermann');
    await page.getByLabel('Address', { exact: true }).fill('Hauptstraße 1');
    await page.getByLabel('City').fill('Berlin');
    await page.getByLabel('Postal code').fill('10115');
    await page.getByLabel(/Country code/).fill('DE');
    await page.getByRole('button', { name: 'Place order' }).click();
    await page.waitForURL(/\/orders\/[0-9a-f-]{36}/);
    orderId = /\/orders\/([0-9a-f-]{36})/.exec(page.url())[1];
    await page.getByTestId('order-status').filter({ hasText: 'Pending' }).waitFor({ timeout: UPDATE_TIMEOUT });
    assert.match(await page.locator('.facts .total').textContent(), /21[.,]40/);
    await shot(page, '02-order-pending');
    await page.context().close();
  });

  it('staff confirms it, and the customer sees CONFIRMED', async () => {
    assert.ok(orderId, 'the previous scenario placed an order');
    const staffPage = await newPage();
    await signInWithToken(staffPage, STAFF_TOKEN, staff);
    await staffPage.getByRole('heading', { name: 'Orders by status' }).waitFor();
    const row = staffPage.locator(`tr[data-order-id="${orderId}"]`);
    await row.waitFor({ timeout: UPDATE_TIMEOUT });
    await row.getByRole('button', { name: /^Confirm order/ }).click();
    await staffPage.getByRole('status').filter({ hasText: 'confirmed' }).waitFor();
    await shot(staffPage, '03-staff-confirmed');
    await staffPage.context().close();

    const page = await newPage();
    await signInWithToken(page, CUSTOMER_TOKEN, customer);
    await page.goto(`/orders/${orderId}`);
    await page.getByTestId('order-status').filter({ hasText: 'Confirmed' }).waitFor({ timeout: UPDATE_TIMEOUT });
    await shot(page, '04-customer-confirmed');
    await page.context().close();
  });
});
