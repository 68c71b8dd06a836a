// The wire contract (ARCHITECTURE.md "Wire contract"); money is integer minor units.

export const ORDER_STATUSES = ['PENDING', 'CONFIRMED', 'SHIPPED', 'DELIVERED', 'CANCELLED'] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

export interface Product {
  sku: string;
  name: string;
  unit_price: number;
  currency: string;
  active: boolean;
}

export interface ShippingAddress {
  name: string;
  line1: string;
  line2?: string;
  city: string;
  postal_code: string;
  region?: string;
  country: string;
}

export interface OrderItem {
  sku: string;
  name: string;
  quantity: number;
  unit_price: number;
  line_total: number;
}

export interface Order {
  id: string;
  user_id: string;
  status: OrderStatus;
  items: OrderItem[];
  currency: string;
  total: number;
  shipping_address: ShippingAddress;
  version: number;
  created_at: string;
  updated_at: string;
}

export interface OrderList {
  items: Order[];
  next_page_token?: string | null;
}

export interface ItemRequest {
  sku: string;
  quantity: number;
}

/** RFC 9457 problem details, as the API and `ordexa web` send them. */
export interface Problem {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
  errors?: { field: string; message: string }[];
}

export type Transition = 'confirm' | 'ship' | 'deliver' | 'cancel';
