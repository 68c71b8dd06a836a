import { useEffect, useState, type FormEvent } from 'react';
import { devSignIn, fetchClientConfig } from '../api/client';
import { ProblemMessage } from '../components/ProblemMessage';
import { humanize, humanizeError, type HumanProblem } from '../problems';
import { sessionFromToken, type Session } from '../session';

/**
 * In development (`ordexa web --dev-sign-in`) anyone may sign in as any user, with or without
 * the staff role. Otherwise the page takes an access token issued by the identity provider.
 */
export function SignIn({ onSignedIn }: { onSignedIn: (session: Session) => void }) {
  const [devMode, setDevMode] = useState<boolean | null>(null);
  const [user, setUser] = useState('alice');
  const [admin, setAdmin] = useState(false);
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<HumanProblem | null>(null);

  useEffect(() => {
    let live = true;
    fetchClientConfig().then((config) => {
      if (live) setDevMode(config.dev_sign_in);
    });
    return () => {
      live = false;
    };
  }, []);

  const signInAs = async (name: string, asAdmin: boolean) => {
    setBusy(true);
    setProblem(null);
    try {
      const minted = await devSignIn(name.trim(), asAdmin);
      const session = sessionFromToken(minted);
      if (!session) throw new Error('the token could not be read');
      onSignedIn(session);
    } catch (err) {
      setProblem(humanizeError(err));
    } finally {
      setBusy(false);
    }
  };

  const submitDev = (event: FormEvent) => {
    event.preventDefault();
    void signInAs(user, admin);
  };

  const submitToken = (event: FormEvent) => {
    event.preventDefault();
    const session = sessionFromToken(token);
    if (session) onSignedIn(session);
    else setProblem(humanize({ status: 401, detail: 'the token is not a valid, unexpired access token' }));
  };

  return (
    <section className="panel narrow" aria-labelledby="signin-title">
      <h1 id="signin-title">Sign in</h1>
      <ProblemMessage problem={problem} focus />
      {devMode === null && <p className="muted">Checking how to sign in…</p>}
      {devMode === true && (
        <>
          <p className="notice">Development mode: sign in as anyone, no password. This is switched off in production.</p>
          <form onSubmit={submitDev} className="form">
            <label htmlFor="signin-user">User name</label>
            <input
              id="signin-user"
              name="user"
              value={user}
              onChange={(e) => setUser(e.target.value)}
              autoComplete="username"
              required
              maxLength={64}
              pattern="[A-Za-z0-9._@\-]+"
              aria-describedby="signin-user-hint"
            />
            <p id="signin-user-hint" className="hint">
              Letters, digits and . _ - @. Each user sees only their own orders.
            </p>
            <label className="check">
              <input type="checkbox" checked={admin} onChange={(e) => setAdmin(e.target.checked)} /> Staff (admin role)
            </label>
            <button type="submit" disabled={busy}>
              Sign in
            </button>
          </form>
          <p className="quick">
            Quick:{' '}
            <button type="button" className="link" disabled={busy} onClick={() => void signInAs('alice', false)}>
              customer alice
            </button>{' '}
            ·{' '}
            <button type="button" className="link" disabled={busy} onClick={() => void signInAs('staff', true)}>
              staff
            </button>
          </p>
        </>
      )}
      {devMode === false && (
        <form onSubmit={submitToken} className="form">
          <p>Sign in with your organisation’s identity provider, then paste the access token it issued.</p>
          <label htmlFor="signin-token">Access token</label>
          <textarea id="signin-token" rows={4} value={token} onChange={(e) => setToken(e.target.value)} required spellCheck={false} />
          <button type="submit">Sign in</button>
        </form>
      )}
    </section>
  );
}
