/**
 * Order lifecycle — pure. Every change goes through `transition`, which refuses moves the
 * lifecycle does not allow, so the audit log can only ever show legal histories.
 *
 *   pending ─→ assigned ─→ in_flight ─→ in_locker ─→ picked_up      (destination: a hub's locker)
 *                                   └─→ delivered                    (destination: a landing site)
 *   pending ⇄ held (emergency mode: normal orders wait, kept, and resume when the mode ends)
 *   assigned ─→ pending (mission refused or failed before take-off: compartment released, retried)
 *   in_flight ─→ pending (the drone landed back at its hub with the parcel — recalled, or its failsafe: retried)
 *   assigned ─→ mission_unknown (no answer in time from the drone) ─→ assigned | in_flight | pending | failed
 *   any open state ─→ failed | cancelled (with a reason)
 *
 *   Ground rounds (貨客混載, issue 12 (2)): the bus has no device of ours, so staff at a hub record its steps.
 *   pending ─→ assigned ─→ on_board ─→ delivered      (staff: "loaded on the bus", then "delivered" at the destination hub)
 *                      │            └─→ failed         (staff: "failed"; or the round ended without "delivered")
 *                      └─→ pending (the round ended and the parcel was never loaded: still at the origin, dispatched again)
 */
export const ORDER_STATES = ['pending', 'held', 'assigned', 'mission_unknown', 'in_flight', 'on_board', 'in_locker', 'delivered', 'picked_up', 'failed', 'cancelled'] as const;
export type OrderState = (typeof ORDER_STATES)[number];

const ALLOWED: Record<OrderState, readonly OrderState[]> = {
  pending: ['assigned', 'held', 'failed', 'cancelled'],
  held: ['pending', 'assigned', 'failed', 'cancelled'],
  assigned: ['in_flight', 'on_board', 'pending', 'failed', 'cancelled', 'mission_unknown'],
  // Issue 12 (5): the hub agent timed out waiting for the drone's answer to the mission — the drone
  // may be flying it. Not cancellable, never re-dispatched until telemetry, a drone event or a late
  // answer settles it, or a flight's worth of time passes with the drone seen on the ground.
  mission_unknown: ['assigned', 'in_flight', 'pending', 'failed'],
  in_flight: ['in_locker', 'delivered', 'failed', 'pending'],
  // On the bus: no longer cancellable (the parcel has left the hub), like a parcel in the air.
  on_board: ['delivered', 'failed'],
  in_locker: ['picked_up', 'failed'],
  delivered: [],
  picked_up: [],
  failed: [],
  cancelled: [],
};

export const FINAL_STATES: readonly OrderState[] = ['delivered', 'picked_up', 'failed', 'cancelled'];

export function canTransition(from: OrderState, to: OrderState): boolean {
  return ALLOWED[from].includes(to);
}

export class IllegalTransition extends Error {
  override readonly name = 'IllegalTransition';
  constructor(
    readonly from: OrderState,
    readonly to: OrderState,
  ) {
    super(`an order cannot go from ${from} to ${to}`);
  }
}

export function assertTransition(from: OrderState, to: OrderState): void {
  if (!canTransition(from, to)) throw new IllegalTransition(from, to);
}

/** Cancelling is allowed until the parcel is in the air. */
export function cancellable(state: OrderState): boolean {
  return canTransition(state, 'cancelled');
}
