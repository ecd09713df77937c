/**
 * Splits `dtS` simulated seconds into steps of at most one second, so the models' integrations
 * (battery drain, flight progress, temperature drift, wind) stay accurate when the simulator runs
 * fast (timeScale) or catches up after a stalled tick.
 */
export const MAX_SUBSTEP_S = 1;

export function forEachSubstep(dtS: number, step: (h: number) => void): void {
  let left = dtS;
  while (left > 1e-9) {
    const h = Math.min(MAX_SUBSTEP_S, left);
    step(h);
    left -= h;
  }
}
