// Package fsm is the deterministic channel state machine: it applies
// leader-signed batches through an Executor, keeps the channel state, the
// per-height change-set journal since the settled height, the chained digest
// and snapshots. It uses no raft, network, clock or randomness.
package fsm
