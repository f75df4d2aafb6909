package fsm

import "github.com/scraft/scraft/protocol"

// Executor runs the channel contract. A *vm.Module satisfies it as it is;
// tests use a tiny deterministic interpreter.
//
// Both methods are called from the goroutine that drives the Machine, one
// call at a time. An Executor must be deterministic: the same Call over the
// same state must give the same CallResult on every member, or honest
// members would disagree and one of them would be punished.
type Executor interface {
	// Has reports whether the contract exports the entry function name
	// (without the "contract::" prefix). The machine asks it before running
	// the optional hooks on_join, on_leave and on_tick: a hook the contract
	// does not export is skipped and the entry succeeds with no effect.
	Has(function string) bool
	// Execute runs one entry function over state, which it must not modify:
	// it reports what it would change in CallResult.ChangeSet. Every failure
	// is a Status in the result, never a panic.
	Execute(call protocol.Call, state protocol.StateReader) protocol.CallResult
}

// JoinChecker checks a join system tx, ordered in a batch of epoch,
// against the settlement chain. Its answer must be a fact of the chain's
// history (the chain gave this join sequence number to this member and
// key), never of the moment it is asked, so that every member reaches the
// same verdict, even one that applies the entry after the member left: when
// the caller does not know yet, it must wait for the chain rather than say
// no. (The leader checking its own entry in Propose may say no instead, as
// for LeaveChecker.)
type JoinChecker interface {
	CheckJoin(join protocol.MemberJoin, epoch uint64) error
}

// LeaveChecker checks against the settlement chain the leave entry of a
// member that did not ask to leave in the channel (its LeaveHeight is 0).
// The leader may order such a leave only because the chain let the member
// go: it left through the chain alone, or was forced out.
//
// Like JoinChecker its answer must be a fact of the chain's history, the
// same on every member whenever it is asked: "the chain ended this
// membership (the one of member.JoinSeq) while the channel's epoch there
// was at most epoch", epoch being that of the batch that orders the leave.
// An honest leader of that epoch saw the end on chain before it ordered the
// leave, so it always passes; a membership that ends later ends in a later
// epoch, so a refusal never turns into an acceptance. While the chain is
// still at epoch and the membership has not ended, the answer is not known
// yet: the caller must wait for the chain rather than say no. (The leader
// checking its own entry in Propose may say no instead: it only decides
// what it signs, which its followers would wait on.)
type LeaveChecker interface {
	CheckLeave(member Member, epoch uint64) error
}

// LeaderCheck tells Apply whether leader was entitled to sign batches in
// epoch, as recorded on the settlement chain. Like JoinChecker it must
// answer from chain history. A nil LeaderCheck accepts any leader whose
// signature verifies; the machine still requires epochs never to go
// backwards and one leader per epoch.
type LeaderCheck func(epoch uint64, leader protocol.Address) error
