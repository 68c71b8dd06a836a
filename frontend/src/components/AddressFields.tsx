import type { ShippingAddress } from '../api/types';

export const EMPTY_ADDRESS: ShippingAddress = { name: '', line1: '', line2: '', city: '', postal_code: '', region: '', country: '' };

/** Optional fields left empty are left out, as the API expects. */
export function cleanAddress(address: ShippingAddress): ShippingAddress {
  const out: ShippingAddress = {
    name: address.name.trim(),
    line1: address.line1.trim(),
    city: address.city.trim(),
    postal_code: address.postal_code.trim(),
    country: address.country.trim().toUpperCase(),
  };
  if (address.line2?.trim()) out.line2 = address.line2.trim();
  if (address.region?.trim()) out.region = address.region.trim();
  return out;
}

const FIELDS: { key: keyof ShippingAddress; label: string; autoComplete: string; required: boolean }[] = [
  { key: 'name', label: 'Full name', autoComplete: 'name', required: true },
  { key: 'line1', label: 'Address', autoComplete: 'address-line1', required: true },
  { key: 'line2', label: 'Address line 2 (optional)', autoComplete: 'address-line2', required: false },
  { key: 'city', label: 'City', autoComplete: 'address-level2', required: true },
  { key: 'postal_code', label: 'Postal code', autoComplete: 'postal-code', required: true },
  { key: 'region', label: 'Region (optional)', autoComplete: 'address-level1', required: false },
  { key: 'country', label: 'Country code (2 letters, e.g. DE)', autoComplete: 'country', required: true },
];

export function AddressFields({ idPrefix, address, onChange, disabled = false }: {
  idPrefix: string;
  address: ShippingAddress;
  onChange: (address: ShippingAddress) => void;
  disabled?: boolean;
}) {
  return (
    <fieldset className="address" disabled={disabled}>
      <legend>Shipping address</legend>
      {FIELDS.map(({ key, label, autoComplete, required }) => (
        <div className="field" key={key}>
          <label htmlFor={`${idPrefix}-${key}`}>{label}</label>
          <input
            id={`${idPrefix}-${key}`}
            name={key}
            value={address[key] ?? ''}
            autoComplete={autoComplete}
            required={required}
            maxLength={key === 'country' ? 2 : 200}
            pattern={key === 'country' ? '[A-Za-z]{2}' : undefined}
            onChange={(e) => onChange({ ...address, [key]: e.target.value })}
          />
        </div>
      ))}
    </fieldset>
  );
}
