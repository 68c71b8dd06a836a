// Who is signed in: the bearer token and what its payload says (the API verifies the
// signature; the SPA only reads `sub`, `roles` and `exp` to decide what to show).

export interface Session {
  token: string;
  user: string;
  admin: boolean;
  /** Seconds since the epoch. */
  expiresAt: number;
}

const STORAGE_KEY = 'ordexa.session';

function decodeBase64Url(part: string): string {
  const base64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
  const binary = atob(base64);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The session a token describes, or null when it is not a readable, unexpired JWT. */
export function sessionFromToken(token: string, now: number = Date.now() / 1000): Session | null {
  const parts = token.trim().split('.');
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const claims = JSON.parse(decodeBase64Url(parts[1])) as { sub?: unknown; roles?: unknown; exp?: unknown };
    if (typeof claims.sub !== 'string' || !claims.sub || typeof claims.exp !== 'number') return null;
    if (claims.exp <= now) return null;
    const roles = Array.isArray(claims.roles) ? claims.roles : [];
    return { token: token.trim(), user: claims.sub, admin: roles.includes('admin'), expiresAt: claims.exp };
  } catch {
    return null;
  }
}

export function loadSession(storage: Storage = localStorage): Session | null {
  const token = storage.getItem(STORAGE_KEY);
  return token ? sessionFromToken(token) : null;
}

export function saveSession(session: Session | null, storage: Storage = localStorage): void {
  if (session) storage.setItem(STORAGE_KEY, session.token);
  else storage.removeItem(STORAGE_KEY);
}
