// Problem details → what a person reads. The API's `detail` is written for developers; the
// title and the advice here are for the customer or the staff member in front of the screen.

import { ApiProblem, NETWORK_PROBLEM_STATUS } from './api/client';
import type { Problem } from './api/types';

export interface HumanProblem {
  /** One sentence saying what happened. */
  title: string;
  /** What to do about it, or more about what happened. */
  advice: string;
  /** Field problems, labelled for people ("Postal code: must not be empty"). */
  fields: string[];
  status: number;
  /** The problem type's slug, when the API named one (`read-model-unavailable`, `validation`, …). */
  kind?: string;
}

const FIELD_LABELS: Record<string, string> = {
  name: 'Name',
  line1: 'Address',
  line2: 'Address line 2',
  city: 'City',
  postal_code: 'Postal code',
  region: 'Region',
  country: 'Country',
  quantity: 'Quantity',
  sku: 'SKU',
  unit_price: 'Price',
  currency: 'Currency',
  items: 'Items',
  limit: 'Page size',
  status: 'Status',
};

/** `/shipping_address/postal_code` → `Postal code`; `/items/0/quantity` → `Item 1: Quantity`. */
export function fieldLabel(pointer: string): string {
  const parts = pointer.split('/').filter(Boolean);
  const last = parts.at(-1) ?? '';
  const itemIndex = parts[0] === 'items' && parts[1] !== undefined && /^\d+$/.test(parts[1]) ? Number(parts[1]) : null;
  const label = FIELD_LABELS[last] ?? (last ? last.replace(/_/g, ' ') : 'Request');
  return itemIndex !== null && last !== parts[1] ? `Item ${itemIndex + 1}: ${label}` : label;
}

/** The problem type's slug: `https://ordexa.io/problems/read-model-unavailable` → `read-model-unavailable`. */
export function problemKind(problem: Problem): string | undefined {
  return problem.type?.split('/').at(-1) || undefined;
}

/** Orders cannot be read (the read model is down), while placing, changing and cancelling them still works. */
export const READ_MODEL_UNAVAILABLE = 'read-model-unavailable';

function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return trimmed;
  const capital = trimmed[0]!.toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

export function humanize(problem: Problem): HumanProblem {
  const fields = (problem.errors ?? []).map((e) => `${fieldLabel(e.field)}: ${e.message}`);
  const detail = problem.detail ? sentence(problem.detail) : '';
  const make = (title: string, advice: string): HumanProblem => ({ title, advice, fields, status: problem.status, kind: problemKind(problem) });
  if (problemKind(problem) === READ_MODEL_UNAVAILABLE) {
    return make(
      'Orders cannot be shown right now.',
      'Your orders are safe, and placing, changing and cancelling orders still works. This page updates by itself once orders can be shown again.',
    );
  }
  switch (problem.status) {
    case NETWORK_PROBLEM_STATUS:
      return make('We could not reach Ordexa.', 'Check your connection, then try again.');
    case 400:
      return make('Something in that request was not right.', detail || 'Please reload the page and try again.');
    case 401:
      return make('Your session has ended.', 'Please sign in again.');
    case 403:
      return make('You are not allowed to do that.', 'This needs a staff account. Sign in as staff, or ask an administrator.');
    case 404:
      return make('We could not find that.', 'It may not exist, or it belongs to another account.');
    case 409:
      return make('That is not possible in the order’s current state.', detail || 'Reload to see where the order stands now.');
    case 412:
      return make(
        'This was changed by someone else while you were looking at it.',
        'We have loaded the latest version. Check it and try again.',
      );
    case 413:
      return make('That is too much to send at once.', 'Order fewer lines, or shorten the address.');
    case 422:
      if (/idempotency/i.test(problem.detail ?? '')) {
        return make('This looks like a repeat of an earlier order with different contents.', 'Start a new checkout and try again.');
      }
      return make('Please check what you entered.', fields.length > 0 ? 'These need attention:' : detail);
    case 429:
      return make('Too many requests right now.', 'Wait a moment, then try again.');
    case 502:
    case 503:
    case 504:
      return make('Ordexa is temporarily unavailable.', 'Please try again in a moment.');
    default:
      if (problem.status >= 500) {
        return make('Something went wrong on our side.', 'It has been logged. Please try again in a moment.');
      }
      return make(problem.title ? sentence(problem.title) : `The request failed (HTTP ${problem.status}).`, detail);
  }
}

/** Any thrown value as a problem a person can read. */
export function humanizeError(err: unknown): HumanProblem {
  if (err instanceof ApiProblem) return humanize(err.problem);
  return humanize({ status: 500, detail: err instanceof Error ? err.message : String(err) });
}
