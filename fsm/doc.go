// Package fsm is the deterministic channel state machine: it applies
// leader-signed batches through an Executor, keeps the channel state, the
// per-height change-set journal since the settled height, the chained digest
// and snapshots, and records evidence when a leader's results differ from
// its own. It uses no raft, network, clock, randomness or goroutines: package
// cluster drives a Machine from its raft FSM goroutine.
//
// A follower calls Apply for every committed batch. The leader admits
// submitted txs with CheckCall, calls Propose to build and sign a batch,
// then Apply when raft commits it, which reuses the results Propose
// computed. Snapshot and Restore carry the state
// through raft snapshots; NetChangeSet, Digest and PruneTo serve settlement.
//
// Threading: a Machine must be used from one goroutine at a time. A
// *Snapshot is immutable and may be written from any goroutine, and Verify
// (a batch's signature checks, most of a follower's work) is a pure
// function that may run anywhere ahead of ApplyVerified.
//
// See DESIGN.md in this folder for the state, evidence, speculative results
// and the snapshot format.
package fsm
