import { describe, expect, it } from 'vitest';
import { loadSession, saveSession, sessionFromToken } from './session';

function token(claims: object): string {
  // As a JWT carries it: UTF-8 JSON, base64url without padding.
  const part = (o: object) => btoa(String.fromCharCode(...new TextEncoder().encode(JSON.stringify(o)))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}.signature`;
}

describe('session', () => {
  const now = 1_800_000_000;

  it('reads user and admin role from the token', () => {
    expect(sessionFromToken(token({ sub: 'alice', exp: now + 60 }), now)).toMatchObject({ user: 'alice', admin: false });
    expect(sessionFromToken(token({ sub: 'staff', exp: now + 60, roles: ['admin'] }), now)).toMatchObject({ user: 'staff', admin: true });
    expect(sessionFromToken(token({ sub: 'zoë', exp: now + 60 }), now)?.user).toBe('zoë');
  });

  it('refuses expired, subject-less and malformed tokens', () => {
    expect(sessionFromToken(token({ sub: 'alice', exp: now - 1 }), now)).toBeNull();
    expect(sessionFromToken(token({ exp: now + 60 }), now)).toBeNull();
    expect(sessionFromToken('not-a-jwt', now)).toBeNull();
    expect(sessionFromToken('a.%%%.c', now)).toBeNull();
  });

  it('is kept in storage until signed out', () => {
    const session = sessionFromToken(token({ sub: 'alice', exp: Date.now() / 1000 + 600 }));
    expect(session).not.toBeNull();
    saveSession(session);
    expect(loadSession()?.user).toBe('alice');
    saveSession(null);
    expect(loadSession()).toBeNull();
  });
});
