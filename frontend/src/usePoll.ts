import { useEffect, useRef } from 'react';

export const POLL_INTERVAL_MS = 2000;

/**
 * Calls `tick` every `intervalMs` while the page is visible (and once at once when it becomes
 * visible again), so a status changed elsewhere shows up without a reload and a hidden tab
 * costs the API nothing. `tick` may change between renders; the latest one is called.
 */
export function usePoll(tick: () => void, intervalMs: number = POLL_INTERVAL_MS, enabled = true): void {
  const latest = useRef(tick);
  useEffect(() => {
    latest.current = tick;
  });
  useEffect(() => {
    if (!enabled) return undefined;
    let timer: ReturnType<typeof setInterval> | undefined;
    const start = () => {
      if (timer === undefined) timer = setInterval(() => latest.current(), intervalMs);
    };
    const stop = () => {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    };
    const onVisibility = () => {
      if (document.visibilityState === 'visible') {
        latest.current();
        start();
      } else {
        stop();
      }
    };
    if (document.visibilityState === 'visible') start();
    document.addEventListener('visibilitychange', onVisibility);
    return () => {
      stop();
      document.removeEventListener('visibilitychange', onVisibility);
    };
  }, [intervalMs, enabled]);
}
