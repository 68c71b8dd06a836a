import { useEffect, useRef } from 'react';
import type { HumanProblem } from '../problems';

/**
 * A problem as a person reads it. role="alert" announces it to screen readers; focus moves to
 * it when `focus` is set (after a form submission) so keyboard users land on it.
 */
export function ProblemMessage({ problem, focus = false, onRetry }: { problem: HumanProblem | null; focus?: boolean; onRetry?: () => void }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (problem && focus) ref.current?.focus();
  }, [problem, focus]);
  if (!problem) return null;
  return (
    <div className="problem" role="alert" tabIndex={-1} ref={ref} data-status={problem.status} data-kind={problem.kind}>
      <p className="problem-title">{problem.title}</p>
      {problem.advice && <p>{problem.advice}</p>}
      {problem.fields.length > 0 && (
        <ul>
          {problem.fields.map((field) => (
            <li key={field}>{field}</li>
          ))}
        </ul>
      )}
      {onRetry && (
        <button type="button" className="secondary" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}
