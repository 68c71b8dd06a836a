import { describe, expect, it } from 'vitest';
import { currencyDigits, formatMoney, minorToInput, parseMoney } from './money';

describe('money', () => {
  it('knows each currency’s decimals', () => {
    expect(currencyDigits('EUR')).toBe(2);
    expect(currencyDigits('JPY')).toBe(0);
    expect(currencyDigits('KWD')).toBe(3);
  });

  it('formats minor units', () => {
    expect(formatMoney(2450, 'EUR', 'en-US')).toBe('€24.50');
    expect(formatMoney(900, 'JPY', 'en-US')).toBe('¥900');
  });

  it('parses what staff type into minor units, refusing what it cannot represent', () => {
    expect(parseMoney('12.50', 'EUR')).toBe(1250);
    expect(parseMoney('12,5', 'EUR')).toBe(1250);
    expect(parseMoney(' 7 ', 'EUR')).toBe(700);
    expect(parseMoney('900', 'JPY')).toBe(900);
    expect(parseMoney('9.5', 'JPY')).toBeNull();
    expect(parseMoney('1.234', 'EUR')).toBeNull();
    expect(parseMoney('-1', 'EUR')).toBeNull();
    expect(parseMoney('abc', 'EUR')).toBeNull();
    expect(parseMoney('', 'EUR')).toBeNull();
    expect(minorToInput(1250, 'EUR')).toBe('12.50');
    expect(parseMoney(minorToInput(1999, 'EUR'), 'EUR')).toBe(1999);
  });
});
