package protocol

// RaftCall is what a node's transport tells its authorizer of one incoming
// Raft RPC, before the Raft library sees it. Its fields are plain values so
// that the transport, which declares the authorizer, and the cluster, which
// implements it, share it without importing each other.
type RaftCall struct {
	// RPC is "AppendEntries", "RequestVote", "RequestPreVote",
	// "TimeoutNow" or "InstallSnapshot"; Channel the channel it names.
	RPC, Channel string
	// Caller is the member address of the caller's TLS certificate key.
	Caller Address
	// ID and Addr are the sender the RPC's header claims (a Raft server ID
	// and address), Claimed the sender Raft's older fields name (an
	// append's or a snapshot's Leader, a vote's Candidate; empty when the
	// RPC has none).
	ID, Addr, Claimed string
	// Term is the RPC's term (zero for TimeoutNow, which has none).
	Term uint64
	// LeadershipTransfer is a RequestVote's leadership-transfer flag.
	LeadershipTransfer bool
	// Configuration is an InstallSnapshot's encoded Raft configuration.
	Configuration []byte
}
