import { useCallback, useEffect, useMemo, useReducer, useRef, useState, type ReactNode } from 'react';
import { Api } from './api/client';
import { ORDER_STATUSES, type OrderStatus } from './api/types';
import { AppContext, type AppContextValue } from './app-context';
import { cartCount, cartReducer, loadCart, saveCart } from './cart';
import { CartPage } from './pages/Cart';
import { Catalog } from './pages/Catalog';
import { MyOrders } from './pages/MyOrders';
import { OrderDetail } from './pages/OrderDetail';
import { SignIn } from './pages/SignIn';
import { StaffCatalog } from './pages/StaffCatalog';
import { StaffOrders } from './pages/StaffOrders';
import { Link, navigate, useLocation, type Location } from './router';
import { loadSession, saveSession, type Session } from './session';

export function App() {
  const [session, setSession] = useState<Session | null>(() => loadSession());
  const location = useLocation();

  const signIn = (next: Session) => {
    saveSession(next);
    setSession(next);
    navigate(next.admin ? '/staff/orders' : '/', { replace: true });
  };
  const signOut = useCallback(() => {
    saveSession(null);
    setSession(null);
  }, []);

  if (!session) {
    return (
      <Shell>
        <main id="main" tabIndex={-1}>
          <SignIn onSignedIn={signIn} />
        </main>
      </Shell>
    );
  }
  // A new user gets a new cart and a fresh app state.
  return <SignedIn key={session.user} session={session} signOut={signOut} location={location} />;
}

function SignedIn({ session, signOut, location }: { session: Session; signOut: () => void; location: Location }) {
  const [cart, dispatchCart] = useReducer(cartReducer, session.user, loadCart);
  const [announcement, setAnnouncement] = useState('');
  const clearTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  useEffect(() => saveCart(session.user, cart), [session.user, cart]);
  useEffect(() => () => clearTimeout(clearTimer.current), []);

  const announce = useCallback((message: string) => {
    setAnnouncement(message);
    clearTimeout(clearTimer.current);
    clearTimer.current = setTimeout(() => setAnnouncement(''), 4000);
  }, []);

  const api = useMemo(() => new Api({ token: () => session.token, onUnauthorized: signOut }), [session.token, signOut]);
  const value: AppContextValue = useMemo(
    () => ({ api, session, cart, dispatchCart, signOut, announce }),
    [api, session, cart, signOut, announce],
  );

  return (
    <AppContext.Provider value={value}>
      <Shell
        nav={
          <>
            <nav aria-label="Main">
              <ul>
                <li>
                  <NavLink href="/" current={location.path === '/'}>
                    Catalog
                  </NavLink>
                </li>
                <li>
                  <NavLink href="/cart" current={location.path === '/cart'}>
                    Cart <span className="count" aria-label={`${cartCount(cart)} items`}>{cartCount(cart)}</span>
                  </NavLink>
                </li>
                <li>
                  <NavLink href="/orders" current={location.path === '/orders'}>
                    My orders
                  </NavLink>
                </li>
                {session.admin && (
                  <>
                    <li>
                      <NavLink href="/staff/orders" current={location.path === '/staff/orders'}>
                        Staff: orders
                      </NavLink>
                    </li>
                    <li>
                      <NavLink href="/staff/catalog" current={location.path === '/staff/catalog'}>
                        Staff: catalog
                      </NavLink>
                    </li>
                  </>
                )}
              </ul>
            </nav>
            <div className="who">
              <span>
                Signed in as <strong data-testid="signed-in-user">{session.user}</strong>
                {session.admin ? ' (staff)' : ''}
              </span>
              <button type="button" className="link" onClick={signOut}>
                Sign out
              </button>
            </div>
          </>
        }
      >
        <p className="announcer" role="status" aria-live="polite">
          {announcement}
        </p>
        <main id="main" tabIndex={-1}>
          <Route location={location} admin={session.admin} />
        </main>
      </Shell>
    </AppContext.Provider>
  );
}

function Route({ location, admin }: { location: Location; admin: boolean }) {
  const { path, query } = location;
  if (path === '/') return <Catalog />;
  if (path === '/cart') return <CartPage />;
  if (path === '/orders') return <MyOrders />;
  const detail = /^\/orders\/([0-9a-fA-F-]{36})$/.exec(path);
  if (detail?.[1]) {
    const v = Number(query.get('v'));
    return <OrderDetail key={detail[1]} id={detail[1]} minVersion={Number.isSafeInteger(v) && v > 0 ? v : 0} placed={query.get('placed') === '1'} />;
  }
  if (admin && path === '/staff/orders') {
    const raw = query.get('status');
    const status: OrderStatus = ORDER_STATUSES.includes(raw as OrderStatus) ? (raw as OrderStatus) : 'PENDING';
    return <StaffOrders status={status} />;
  }
  if (admin && path === '/staff/catalog') return <StaffCatalog />;
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        There is nothing at this address{path.startsWith('/staff') ? ' for your account' : ''}. <Link href="/">Go to the catalog</Link>.
      </p>
    </section>
  );
}

function NavLink({ href, current, children }: { href: string; current: boolean; children: ReactNode }) {
  return (
    <Link href={href} aria-current={current ? 'page' : undefined}>
      {children}
    </Link>
  );
}

function Shell({ nav, children }: { nav?: ReactNode; children: ReactNode }) {
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link href="/" className="brand">
          Ordexa
        </Link>
        {nav}
      </header>
      {children}
    </>
  );
}
