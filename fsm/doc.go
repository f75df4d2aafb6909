// Package fsm is the deterministic channel state machine: it applies
// leader-signed batches through an Executor, keeps the channel state, the
// per-height change-set journal since the settled height, the chained digest
// and snapshots, and records evidence when a leader's results differ from
// its own. It uses no raft, network, clock, randomness or goroutines: package
// cluster drives a Machine from its raft FSM goroutine.
//
// A follower calls ApplyFacts for every committed batch, with the
// settlement chain's facts the batch needs (Facts) as data. The leader
// admits submitted txs with CheckCall, calls ProposeFacts to build and sign
// a batch, then ApplyFacts when raft commits it, which reuses the results
// ProposeFacts computed. Apply and Propose are the same for a machine with
// no chain (tests, tools). Snapshot and Restore carry the state through
// raft snapshots: the state at the settled height and the leader-signed
// batches since, which ReadSnapshot and RestoreBase let a caller check
// against the chain and re-execute with ApplyFacts. NetChangeSet, Digest,
// LastBatchEnd and PruneTo serve settlement.
//
// Threading: a Machine must be used from one goroutine at a time. A
// *Snapshot is immutable and may be written from any goroutine, and Verify
// (a batch's signature checks, most of a follower's work) is a pure
// function that may run anywhere ahead of ApplyFacts.
//
// See DESIGN.md in this folder for the state, evidence, speculative results
// and the snapshot format.
package fsm
