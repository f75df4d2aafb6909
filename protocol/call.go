package protocol

// Reserved entry functions: the state machine calls them itself, members
// cannot.
const (
	FuncInit    = "init"     // once, when the channel is created
	FuncOnTick  = "on_tick"  // on every tick system tx (args: the little-endian u64 tick number)
	FuncOnJoin  = "on_join"  // when a member joins (sender and args: the member)
	FuncOnLeave = "on_leave" // when a member leaves (sender and args: the member)
)

// IsReserved reports whether name is an entry function only the state
// machine may call.
func IsReserved(name string) bool {
	switch name {
	case FuncInit, FuncOnTick, FuncOnJoin, FuncOnLeave:
		return true
	}
	return false
}

// ReservedContract is the namespace of the requests a member makes to the
// channel itself rather than to its contract.
const ReservedContract = "scraft"

// The requests of the reserved namespace. Each is a signed call by the
// member, so every member verifies that the member asked.
const (
	// RequestLeave asks to take the sender out of the channel: the leader
	// settles, then orders its leave entry.
	RequestLeave = ReservedContract + "::leave"
	// RequestClose asks to close the channel: the state is final from its
	// height on; the leader settles it and closes the channel on chain.
	RequestClose = ReservedContract + "::close"
)

// DefaultGasLimit is the gas each entry function of a channel may use when
// the chain records a gas limit of 0. It is part of the protocol, not a
// node setting: every member of such a channel executes with it, whatever
// its own configuration, so members cannot disagree on it.
const DefaultGasLimit uint64 = 10_000_000

// Call is one invocation of a contract entry function: what the state
// machine hands its executor (package vm runs it).
type Call struct {
	// Function is the export name, e.g. "send" for the tx function
	// "chat::send".
	Function string
	// Args is the call's input: the tx args, the 16-byte member address for
	// on_join/on_leave, the little-endian u64 tick number for on_tick.
	Args []byte
	// Sender is the tx sender, the joining or leaving member, or the zero
	// address for on_tick.
	Sender Address
	// Height is the entry's height; TimestampMs the batch's leader timestamp.
	Height      uint64
	TimestampMs uint64
	// Gas is the limit for this call; values above 2^63−1 count as 2^63−1.
	Gas uint64
}

// CallResult is what running a Call gives. On any status but StatusOK the
// change set, events and output are empty (the state machine drops them);
// GasUsed is what was spent (the whole limit when the gas ran out).
type CallResult struct {
	Status    Status
	AbortCode uint32
	// Message explains a failure to people; it is not part of the digest.
	Message   string
	GasUsed   uint64
	ChangeSet ChangeSet
	Events    []Event
	Output    []byte
}

// StateReader is the contract-visible state a call reads. Get returns the
// value of a resource and whether it exists; the slice must not be
// modified. A StateReader shared by concurrent calls must allow concurrent
// Gets.
type StateReader interface {
	Get(key ResourceKey) ([]byte, bool)
}

// Outcome is a node's verified result of one entry: what the state
// machine reports, what a node answers a call with and streams to
// subscribers, and what the SDK hands the application.
type Outcome struct {
	Height uint64
	Kind   EntryKind
	// Hash is the entry hash (the tx hash for calls).
	Hash   Hash
	Result Result
	// Digest is D(Height).
	Digest Hash
	// Message explains a failure; it is not part of the digest.
	Message   string
	Output    []byte
	ChangeSet ChangeSet
	Events    []Event
}
