import { createContext, useContext, type Dispatch } from 'react';
import type { Api } from './api/client';
import type { Cart, CartAction } from './cart';
import type { Session } from './session';

export interface AppContextValue {
  api: Api;
  session: Session;
  cart: Cart;
  dispatchCart: Dispatch<CartAction>;
  signOut: () => void;
  /** Says something to screen-reader users (and shows it briefly), e.g. "Added Tea to the cart". */
  announce: (message: string) => void;
}

export const AppContext = createContext<AppContextValue | null>(null);

export function useApp(): AppContextValue {
  const value = useContext(AppContext);
  if (!value) throw new Error('useApp outside the signed-in app');
  return value;
}
