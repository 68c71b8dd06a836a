// Paging over the API's opaque tokens. The API only goes forward, so "previous" is the token
// that fetched the page before, kept in a stack.

export interface PagerState {
  /** tokens[i] fetched page i (page 0 has none). */
  tokens: (string | null)[];
  /** The page shown. */
  index: number;
  /** The next page's token, from the page shown; null on the last page. */
  next: string | null;
}

export type PagerAction = { type: 'loaded'; next: string | null } | { type: 'next' } | { type: 'previous' } | { type: 'reset' };

export const initialPager: PagerState = { tokens: [null], index: 0, next: null };

export function pagerReducer(state: PagerState, action: PagerAction): PagerState {
  switch (action.type) {
    case 'loaded':
      return state.next === action.next ? state : { ...state, next: action.next };
    case 'next':
      if (!state.next) return state;
      return { tokens: [...state.tokens.slice(0, state.index + 1), state.next], index: state.index + 1, next: null };
    case 'previous':
      if (state.index === 0) return state;
      return { tokens: state.tokens.slice(0, state.index), index: state.index - 1, next: null };
    case 'reset':
      return initialPager;
  }
}

export function currentToken(state: PagerState): string | null {
  return state.tokens[state.index] ?? null;
}

export function hasPrevious(state: PagerState): boolean {
  return state.index > 0;
}

export function hasNext(state: PagerState): boolean {
  return state.next !== null;
}
