export function Pager({ page, hasPrevious, hasNext, onPrevious, onNext, label }: {
  page: number;
  hasPrevious: boolean;
  hasNext: boolean;
  onPrevious: () => void;
  onNext: () => void;
  label: string;
}) {
  return (
    <nav className="pager" aria-label={label}>
      <button type="button" className="secondary" onClick={onPrevious} disabled={!hasPrevious}>
        ← Newer
      </button>
      <span aria-live="polite">Page {page + 1}</span>
      <button type="button" className="secondary" onClick={onNext} disabled={!hasNext}>
        Older →
      </button>
    </nav>
  );
}
