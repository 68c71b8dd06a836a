import { describe, expect, it } from 'vitest';
import { currentToken, hasNext, hasPrevious, initialPager, pagerReducer } from './paging';

describe('pager', () => {
  it('walks forward with the tokens the API returned and back through the ones it used', () => {
    let s = pagerReducer(initialPager, { type: 'loaded', next: 't1' });
    expect(currentToken(s)).toBeNull();
    expect(hasPrevious(s)).toBe(false);
    expect(hasNext(s)).toBe(true);

    s = pagerReducer(s, { type: 'next' });
    expect(currentToken(s)).toBe('t1');
    expect(hasNext(s)).toBe(false); // unknown until page 2 answers
    s = pagerReducer(s, { type: 'loaded', next: 't2' });
    s = pagerReducer(s, { type: 'next' });
    expect(currentToken(s)).toBe('t2');
    expect(s.index).toBe(2);
    s = pagerReducer(s, { type: 'loaded', next: null });
    expect(hasNext(s)).toBe(false);
    expect(pagerReducer(s, { type: 'next' })).toBe(s);

    s = pagerReducer(s, { type: 'previous' });
    expect(currentToken(s)).toBe('t1');
    s = pagerReducer(s, { type: 'previous' });
    expect(currentToken(s)).toBeNull();
    expect(pagerReducer(s, { type: 'previous' })).toBe(s);
  });

  it('does not change state when a poll returns the same next token', () => {
    const s = pagerReducer(initialPager, { type: 'loaded', next: 't1' });
    expect(pagerReducer(s, { type: 'loaded', next: 't1' })).toBe(s);
  });
});
