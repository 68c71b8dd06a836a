import { describe, expect, it } from 'vitest';
import { ApiProblem } from './api/client';
import { fieldLabel, humanize, humanizeError } from './problems';

describe('problems for people', () => {
  it('labels JSON pointers as form fields', () => {
    expect(fieldLabel('/shipping_address/postal_code')).toBe('Postal code');
    expect(fieldLabel('/items/0/quantity')).toBe('Item 1: Quantity');
    expect(fieldLabel('/items')).toBe('Items');
    expect(fieldLabel('/')).toBe('Request');
  });

  it('lists field problems of a validation error', () => {
    const human = humanize({
      status: 422,
      type: 'https://ordexa.io/problems/validation',
      detail: 'invalid',
      errors: [
        { field: '/shipping_address/country', message: 'must be two uppercase letters' },
        { field: '/items/1/quantity', message: 'must be at least 1' },
      ],
    });
    expect(human.title).toBe('Please check what you entered.');
    expect(human.fields).toEqual(['Country: must be two uppercase letters', 'Item 2: Quantity: must be at least 1']);
  });

  it('explains conflicts, stale versions, auth and outages without jargon', () => {
    expect(humanize({ status: 409, detail: 'cannot confirm an order that is CANCELLED' }).advice).toBe(
      'Cannot confirm an order that is CANCELLED.',
    );
    expect(humanize({ status: 412 }).title).toMatch(/changed by someone else/);
    expect(humanize({ status: 401 }).advice).toBe('Please sign in again.');
    expect(humanize({ status: 403 }).title).toBe('You are not allowed to do that.');
    expect(humanize({ status: 502, detail: 'the API at http://x cannot be reached' }).title).toBe('Ordexa is temporarily unavailable.');
    expect(humanize({ status: 0 }).title).toBe('We could not reach Ordexa.');
    expect(humanize({ status: 500, detail: 'stack trace' }).advice).not.toContain('stack');
    expect(humanize({ status: 422, detail: 'the Idempotency-Key was used with another request' }).title).toMatch(/repeat/);
  });

  it('turns anything thrown into a message', () => {
    expect(humanizeError(new ApiProblem({ status: 404 })).title).toBe('We could not find that.');
    expect(humanizeError(new Error('boom')).status).toBe(500);
  });
});
