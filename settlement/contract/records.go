package contract

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"time"

	"github.com/scraft/scraft/delegate"
	"github.com/scraft/scraft/protocol"
)

// Limits on call data.
const (
	MaxCodeLen       = 4 << 20
	MaxLabels        = 32
	MaxLabelKeyLen   = 64
	MaxLabelValueLen = 256
	MaxContractName  = 64
	MaxAttestations  = 4096
	MaxVotes         = 4096
	MaxProposalData  = protocol.MaxBatchBytes + 1<<20
	MaxMembers       = 1 << 16
	// MaxNodeAddressLen bounds a member's node address: a DNS name (at
	// most 253 bytes) or an IP literal, a colon and a port.
	MaxNodeAddressLen = 253 + len(":65535")
	// MaxGasLimit bounds a channel's gas limit per entry function: 10×
	// protocol.DefaultGasLimit. A limit of 0 stands for the default.
	MaxGasLimit = 10 * protocol.DefaultGasLimit
	// MaxInitialStateBytes bounds a channel's initial state, canonical
	// encoding: every member's first log command (the genesis) carries
	// it, so it stays well inside a Raft message and a chain tx.
	MaxInitialStateBytes = 4 << 20
	// MinTickInterval and MaxTickInterval bound a channel's tick interval
	// when it has ticks (0: none); it is a whole number of milliseconds.
	MinTickInterval = time.Millisecond
	MaxTickInterval = 24 * time.Hour
	// MaxPolicyInterval bounds the settlement interval and the
	// censorship window.
	MaxPolicyInterval = 30 * 24 * time.Hour
)

// LegacyVersion is the VM and gas table version of a channel whose record
// names none (0): channels created before versions were recorded ran
// version 1 of both.
const LegacyVersion = 1

// Label is one config label of a channel, such as server_address.
type Label struct {
	Key, Value string
}

// Collateral says what backs a member's place in a channel.
type Collateral uint8

// Kinds of collateral.
const (
	// CollateralStake is the member's stake in this channel.
	CollateralStake Collateral = 1
	// CollateralPool is a part of the member's shared staking pool deposit.
	CollateralPool Collateral = 2
)

func (c Collateral) String() string {
	switch c {
	case CollateralStake:
		return "stake"
	case CollateralPool:
		return "pool"
	}
	return fmt.Sprintf("collateral(%d)", uint8(c))
}

// MarshalText implements encoding.TextMarshaler.
func (c Collateral) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// Account is an address's money on the chain.
type Account struct {
	// Balance is free money.
	Balance uint64
	// PoolDeposit is what the account holds in the shared staking pool, of
	// which PoolLocked is named as collateral by channel memberships.
	PoolDeposit uint64
	PoolLocked  uint64
}

// PoolFree returns the part of the pool deposit that may be withdrawn.
func (a *Account) PoolFree() uint64 { return a.PoolDeposit - a.PoolLocked }

func (a *Account) encode(e *protocol.Encoder) {
	e.U64(a.Balance)
	e.U64(a.PoolDeposit)
	e.U64(a.PoolLocked)
}

func (a *Account) decode(d *protocol.Decoder) {
	a.Balance = d.U64()
	a.PoolDeposit = d.U64()
	a.PoolLocked = d.U64()
}

// Channel is a channel's on-chain record.
type Channel struct {
	ID       protocol.ChannelID
	Creator  protocol.Address
	Contract string        // the contract's name, e.g. "chat"
	CodeHash protocol.Hash // the wasm code, stored once per hash
	Labels   []Label       // sorted by key
	Config   ChannelConfig

	CreatedHeight uint64
	CreatedAtMs   int64
	Closed        bool

	Leader protocol.Address // zero when there is none
	Epoch  uint64           // grows with every change of leader

	SettledHeight uint64
	SettledDigest protocol.Hash
	SettledAtMs   int64

	LastJoinSeq  uint64 // the join sequence number given last
	LastProposal uint64 // the id given last
	Members      uint32 // current member count

	// SettledStateHash is the machine-state hash at SettledHeight
	// (fsm.Machine.StateHash) that the executed settlement carried; zero
	// before the first settlement and for settlements filed without one.
	// It is encoded after the versions, and a record written before it
	// existed decodes with it zero.
	SettledStateHash protocol.Hash
	// Candidates are the channel's candidates (delegate.Candidates), best
	// ranked first, as the last call on the channel left them; empty while
	// it has at most delegate.Seats members. Encoded last, only when set,
	// so records of smaller channels keep their bytes.
	Candidates []protocol.Address
}

// ChannelConfig holds a channel's settings, fixed at creation.
type ChannelConfig struct {
	// TickInterval is the spacing of tick system txs; 0 means no ticks.
	TickInterval time.Duration
	// SettleEveryTxs asks the leader to propose settlement after this many
	// txs; 0 means not by count.
	SettleEveryTxs uint64
	// SettleInterval asks the leader to propose settlement this often; 0
	// means not by time.
	SettleInterval time.Duration
	// GasLimit bounds the gas of one entry function; 0 means
	// protocol.DefaultGasLimit, never a node's own setting. At most
	// MaxGasLimit.
	GasLimit uint64
	// MinStake is the collateral a member must name on join (0: none).
	MinStake uint64
	// Fine is taken from a punished member's collateral (3 or more members)
	// for the reporter; at most MinStake, so it is always paid in full.
	Fine uint64
	// CensorshipWindow is how long a leader has to prove inclusion of a
	// complained-about tx; 0 means the chain's Params.CensorshipWindow.
	CensorshipWindow time.Duration
	// VMVersion and GasTableVersion are the versions of the VM (vm.Version)
	// and of its gas cost table (meter.CostTable.Version) every member
	// must run: a node with others refuses to host the channel. 0 means
	// LegacyVersion. They are encoded after the rest of the record that
	// holds the config, only when set, so records and calls from before
	// them keep their bytes and still decode.
	VMVersion       uint32
	GasTableVersion uint32
}

// VM returns the VM version the channel needs.
func (c *ChannelConfig) VM() uint32 { return orLegacy(c.VMVersion) }

// GasTable returns the gas table version the channel needs.
func (c *ChannelConfig) GasTable() uint32 { return orLegacy(c.GasTableVersion) }

// Gas returns the gas limit of one entry function: GasLimit, or
// protocol.DefaultGasLimit when it is 0.
func (c *ChannelConfig) Gas() uint64 {
	if c.GasLimit == 0 {
		return protocol.DefaultGasLimit
	}
	return c.GasLimit
}

func orLegacy(v uint32) uint32 {
	if v == 0 {
		return LegacyVersion
	}
	return v
}

// encodeVersions appends the versions when set; decodeVersions reads them
// when bytes are left (see ChannelConfig).
func (c *ChannelConfig) encodeVersions(e *protocol.Encoder) {
	if c.VMVersion != 0 || c.GasTableVersion != 0 {
		e.U32(c.VMVersion)
		e.U32(c.GasTableVersion)
	}
}

func (c *ChannelConfig) decodeVersions(d *protocol.Decoder) {
	if d.Err() == nil && d.Remaining() > 0 {
		c.VMVersion = d.U32()
		c.GasTableVersion = d.U32()
	}
}

func (c *ChannelConfig) encode(e *protocol.Encoder) {
	e.I64(int64(c.TickInterval))
	e.U64(c.SettleEveryTxs)
	e.I64(int64(c.SettleInterval))
	e.U64(c.GasLimit)
	e.U64(c.MinStake)
	e.U64(c.Fine)
	e.I64(int64(c.CensorshipWindow))
}

func (c *ChannelConfig) decode(d *protocol.Decoder) {
	c.TickInterval = time.Duration(d.I64())
	c.SettleEveryTxs = d.U64()
	c.SettleInterval = time.Duration(d.I64())
	c.GasLimit = d.U64()
	c.MinStake = d.U64()
	c.Fine = d.U64()
	c.CensorshipWindow = time.Duration(d.I64())
	if d.Err() == nil && (c.TickInterval < 0 || c.SettleInterval < 0 || c.CensorshipWindow < 0) {
		d.Fail(fmt.Errorf("%w: negative duration", ErrMalformed))
	}
}

func encodeLabels(e *protocol.Encoder, ls []Label) {
	e.Uleb(uint64(len(ls)))
	for _, l := range ls {
		e.String(l.Key)
		e.String(l.Value)
	}
}

func decodeLabels(d *protocol.Decoder) []Label {
	n := d.Length(MaxLabels)
	var ls []Label
	for i := 0; i < n && d.Err() == nil; i++ {
		l := Label{Key: d.String(MaxLabelKeyLen), Value: d.String(MaxLabelValueLen)}
		if d.Err() == nil && (l.Key == "" || (i > 0 && ls[i-1].Key >= l.Key)) {
			d.Fail(fmt.Errorf("%w: labels empty, unsorted or repeated at %q", ErrMalformed, l.Key))
		}
		ls = append(ls, l)
	}
	return ls
}

// Label returns the value of the label named key and whether it is set.
func (c *Channel) Label(key string) (string, bool) {
	for _, l := range c.Labels {
		if l.Key == key {
			return l.Value, true
		}
	}
	return "", false
}

// Encode writes the canonical encoding.
func (c *Channel) Encode(e *protocol.Encoder) {
	e.Fixed(c.ID[:])
	e.Fixed(c.Creator[:])
	e.String(c.Contract)
	e.Fixed(c.CodeHash[:])
	encodeLabels(e, c.Labels)
	c.Config.encode(e)
	e.U64(c.CreatedHeight)
	e.I64(c.CreatedAtMs)
	e.Bool(c.Closed)
	e.Fixed(c.Leader[:])
	e.U64(c.Epoch)
	e.U64(c.SettledHeight)
	e.Fixed(c.SettledDigest[:])
	e.I64(c.SettledAtMs)
	e.U64(c.LastJoinSeq)
	e.U64(c.LastProposal)
	e.U32(c.Members)
	// Fields added later trail the record, written only when one is set,
	// so records from before them keep their bytes: the versions, then the
	// settled state hash, then the candidates.
	if c.Config.VMVersion != 0 || c.Config.GasTableVersion != 0 || !c.SettledStateHash.IsZero() || len(c.Candidates) > 0 {
		e.U32(c.Config.VMVersion)
		e.U32(c.Config.GasTableVersion)
		e.Fixed(c.SettledStateHash[:])
	}
	if len(c.Candidates) > 0 {
		e.Uleb(uint64(len(c.Candidates)))
		for _, a := range c.Candidates {
			e.Fixed(a[:])
		}
	}
}

// Decode reads c.
func (c *Channel) Decode(d *protocol.Decoder) {
	d.FixedInto(c.ID[:])
	d.FixedInto(c.Creator[:])
	c.Contract = d.String(MaxContractName)
	d.FixedInto(c.CodeHash[:])
	c.Labels = decodeLabels(d)
	c.Config.decode(d)
	c.CreatedHeight = d.U64()
	c.CreatedAtMs = d.I64()
	c.Closed = d.Bool()
	d.FixedInto(c.Leader[:])
	c.Epoch = d.U64()
	c.SettledHeight = d.U64()
	d.FixedInto(c.SettledDigest[:])
	c.SettledAtMs = d.I64()
	c.LastJoinSeq = d.U64()
	c.LastProposal = d.U64()
	c.Members = d.U32()
	c.Config.VMVersion, c.Config.GasTableVersion, c.SettledStateHash, c.Candidates = 0, 0, protocol.Hash{}, nil
	if d.Err() == nil && d.Remaining() > 0 {
		c.Config.VMVersion = d.U32()
		c.Config.GasTableVersion = d.U32()
		if d.Err() == nil && d.Remaining() > 0 {
			d.FixedInto(c.SettledStateHash[:])
		}
	}
	if d.Err() == nil && d.Remaining() > 0 {
		n := d.Length(delegate.Seats)
		if d.Err() == nil && n == 0 {
			d.Fail(fmt.Errorf("%w: empty candidate list written out", ErrMalformed))
		}
		for i := 0; i < n && d.Err() == nil; i++ {
			var a protocol.Address
			d.FixedInto(a[:])
			if d.Err() == nil && slices.Contains(c.Candidates, a) {
				d.Fail(fmt.Errorf("%w: candidate %s repeated", ErrMalformed, a))
			}
			c.Candidates = append(c.Candidates, a)
		}
	}
}

// Member is one member's record in a channel.
type Member struct {
	Address   protocol.Address
	PublicKey ed25519.PublicKey
	// JoinSeq is the member's join sequence number in the channel (1, 2, …).
	JoinSeq       uint64
	JoinedAtMs    int64
	JoinedHeight  uint64
	LastHeartbeat int64 // chain time of the last keep_alive, Unix ms
	Collateral    Collateral
	// Locked is the collateral held for this membership: the whole channel
	// stake, or the part of the pool deposit locked on join.
	Locked uint64
	// LeaveHeight is the block height of the member's leave call (0 when it
	// has not asked to leave): the first settlement proposed after it, once
	// executed, removes the member and releases its collateral.
	LeaveHeight uint64
	// DelegatedTo is the candidate the member delegated to, if any;
	// Delegators counts the members that delegated to this one.
	DelegatedTo protocol.Address
	Delegators  uint32
	// NodeAddress is the host:port at which the member's node serves the
	// channel (its gRPC address), set by the member itself with
	// set_node_address; empty when it has not said. Other members' nodes
	// join the channel there; the address is the member's word, so a node
	// dialing it still checks who answers.
	NodeAddress string
}

// ValidAt reports whether the member's heartbeat is within ttl (the
// chain's Params.HeartbeatTTL) of chain time nowMs.
func (m *Member) ValidAt(nowMs int64, ttl time.Duration) bool {
	return nowMs-m.LastHeartbeat <= ttl.Milliseconds()
}

// Leaving reports whether the member asked to leave.
func (m *Member) Leaving() bool { return m.LeaveHeight != 0 }

// Encode writes the canonical encoding.
func (m *Member) Encode(e *protocol.Encoder) {
	e.Fixed(m.Address[:])
	e.Bytes(m.PublicKey)
	e.U64(m.JoinSeq)
	e.I64(m.JoinedAtMs)
	e.U64(m.JoinedHeight)
	e.I64(m.LastHeartbeat)
	e.U8(uint8(m.Collateral))
	e.U64(m.Locked)
	e.U64(m.LeaveHeight)
	e.Fixed(m.DelegatedTo[:])
	e.U32(m.Delegators)
	// Written only when set, so that records from before node addresses
	// keep their bytes and still decode.
	if m.NodeAddress != "" {
		e.String(m.NodeAddress)
	}
}

// Decode reads m.
func (m *Member) Decode(d *protocol.Decoder) {
	d.FixedInto(m.Address[:])
	m.PublicKey = d.Bytes(ed25519.PublicKeySize)
	m.JoinSeq = d.U64()
	m.JoinedAtMs = d.I64()
	m.JoinedHeight = d.U64()
	m.LastHeartbeat = d.I64()
	m.Collateral = Collateral(d.U8())
	m.Locked = d.U64()
	m.LeaveHeight = d.U64()
	d.FixedInto(m.DelegatedTo[:])
	m.Delegators = d.U32()
	if d.Err() == nil && d.Remaining() > 0 {
		m.NodeAddress = d.String(MaxNodeAddressLen)
		if d.Err() == nil && m.NodeAddress == "" {
			d.Fail(fmt.Errorf("%w: empty node address written out", ErrMalformed))
		}
	}
}

// Departure records a membership that ended: the member left, was let go
// by a settlement or forced out. It is kept for good under the
// membership's join sequence number, which is never given again, so that
// whether and when a membership ended is a fact of the chain's history:
// a node can check a channel's leave of a member against it whenever it
// asks, and every node gets the same answer.
type Departure struct {
	Address protocol.Address
	JoinSeq uint64
	// Height is the block height of the call that ended the membership.
	Height uint64
	// Epoch is the channel's epoch when the membership ended, before any
	// change of leader the same call made.
	Epoch uint64
	// PublicKey is the member's key, so that who held each join seq, with
	// its key, stays a fact of history (a channel's genesis lists every
	// membership up to its highest join seq, those ended since included).
	// Written only when set: records from before it keep their bytes and
	// decode with none.
	PublicKey ed25519.PublicKey
}

// Encode writes the canonical encoding.
func (dp *Departure) Encode(e *protocol.Encoder) {
	e.Fixed(dp.Address[:])
	e.U64(dp.JoinSeq)
	e.U64(dp.Height)
	e.U64(dp.Epoch)
	if len(dp.PublicKey) > 0 {
		e.Bytes(dp.PublicKey)
	}
}

// Decode reads dp.
func (dp *Departure) Decode(d *protocol.Decoder) {
	d.FixedInto(dp.Address[:])
	dp.JoinSeq = d.U64()
	dp.Height = d.U64()
	dp.Epoch = d.U64()
	if d.Err() == nil && d.Remaining() > 0 {
		dp.PublicKey = d.Bytes(ed25519.PublicKeySize)
	}
}

// EpochLeader records who led one epoch of a channel: the leader named
// by the call that began the epoch (a claim, an election, a punishment, or
// the removal of the leader, which names none). A channel's leader changes
// only with its epoch, so this is the leader for the whole epoch; the
// record is kept for good under the epoch number, so "who led epoch E" is
// a fact of the chain's history a node can ask whenever it likes, also
// long after the channel moved on.
type EpochLeader struct {
	Epoch uint64
	// Leader is zero for an epoch without a leader.
	Leader protocol.Address
	// Height is the block height of the call that began the epoch (the
	// channel's creation for epoch 0).
	Height uint64
}

// Encode writes the canonical encoding.
func (el *EpochLeader) Encode(e *protocol.Encoder) {
	e.U64(el.Epoch)
	e.Fixed(el.Leader[:])
	e.U64(el.Height)
}

// Decode reads el.
func (el *EpochLeader) Decode(d *protocol.Decoder) {
	el.Epoch = d.U64()
	d.FixedInto(el.Leader[:])
	el.Height = d.U64()
}

// ProposalStatus is where a proposal stands.
type ProposalStatus uint8

// Proposal statuses.
const (
	// ProposalOpen accepts votes (or, for a complaint, a proof of inclusion).
	ProposalOpen ProposalStatus = 0
	// ProposalExecuted was executed; nothing more can happen to it.
	ProposalExecuted ProposalStatus = 1
	// ProposalRefuted is a censorship complaint the leader answered.
	ProposalRefuted ProposalStatus = 2
	// ProposalFailed is a punish or election proposal that can no longer
	// pass: the votes against and abstentions left too few members to
	// reach the votes in favour it needs. A proposal whose voting
	// deadline passed without them stays ProposalOpen in its record (no
	// call came to close it) but Standing reports it failed. A censorship
	// complaint is failed when executed after its complainer left.
	ProposalFailed ProposalStatus = 3
	// ProposalPassed is never stored: Standing reports it for an open
	// proposal that has what it needs and waits for execution.
	ProposalPassed ProposalStatus = 4
)

func (s ProposalStatus) String() string {
	switch s {
	case ProposalOpen:
		return "open"
	case ProposalExecuted:
		return "executed"
	case ProposalRefuted:
		return "refuted"
	case ProposalFailed:
		return "failed"
	case ProposalPassed:
		return "passed"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// MarshalText implements encoding.TextMarshaler.
func (s ProposalStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Proposal is a proposal's on-chain record.
type Proposal struct {
	ID       uint64
	Kind     protocol.ProposalKind
	Proposer protocol.Address
	// Data is the canonical encoding of the kind's payload
	// (protocol.Settlement, Punish, Election or Censorship).
	Data []byte

	CreatedHeight uint64
	CreatedAtMs   int64
	// Electorate is the member count at creation; MaxJoinSeq the highest
	// join sequence number then. Only members with JoinSeq ≤ MaxJoinSeq vote.
	Electorate uint32
	MaxJoinSeq uint64

	For, Against, Abstain uint32

	Status ProposalStatus
	// DeadlineMs is the answer deadline of a censorship complaint, or the
	// voting deadline of a punish or election proposal (chain time, Unix
	// ms; 0: none, as in records from before voting deadlines).
	DeadlineMs     int64
	ExecutedHeight uint64

	// Voters is the electorate of a punish or election proposal, taken
	// when it was created, in address order: for a punishment every
	// member but the target, for an election every valid member but the
	// leader. Only they vote, and the votes needed are counted of them,
	// so neither a member who joins later nor one who is offline moves
	// the bar. A settlement filed in a channel with candidates records
	// every member, and is counted over them with delegated weight (For,
	// Against and Abstain then include the silent delegators their
	// candidates' votes carry). Empty for other settlements and for
	// complaints, and in records from before it (those count of
	// Electorate).
	Voters []protocol.Address
	// ExecutedAtMs is the chain time of execution (0 while not executed,
	// and in records from before it).
	ExecutedAtMs int64
}

// Encode writes the canonical encoding.
func (p *Proposal) Encode(e *protocol.Encoder) {
	e.U64(p.ID)
	e.U8(uint8(p.Kind))
	e.Fixed(p.Proposer[:])
	e.Bytes(p.Data)
	e.U64(p.CreatedHeight)
	e.I64(p.CreatedAtMs)
	e.U32(p.Electorate)
	e.U64(p.MaxJoinSeq)
	e.U32(p.For)
	e.U32(p.Against)
	e.U32(p.Abstain)
	e.U8(uint8(p.Status))
	e.I64(p.DeadlineMs)
	e.U64(p.ExecutedHeight)
	// Written only when set, so records from before them keep their
	// bytes and still decode.
	if len(p.Voters) > 0 || p.ExecutedAtMs != 0 {
		e.Uleb(uint64(len(p.Voters)))
		for _, a := range p.Voters {
			e.Fixed(a[:])
		}
		e.I64(p.ExecutedAtMs)
	}
}

// Decode reads p.
func (p *Proposal) Decode(d *protocol.Decoder) {
	p.ID = d.U64()
	p.Kind = protocol.ProposalKind(d.U8())
	d.FixedInto(p.Proposer[:])
	p.Data = d.Bytes(MaxProposalData)
	p.CreatedHeight = d.U64()
	p.CreatedAtMs = d.I64()
	p.Electorate = d.U32()
	p.MaxJoinSeq = d.U64()
	p.For = d.U32()
	p.Against = d.U32()
	p.Abstain = d.U32()
	p.Status = ProposalStatus(d.U8())
	p.DeadlineMs = d.I64()
	p.ExecutedHeight = d.U64()
	if d.Err() == nil && d.Remaining() > 0 {
		n := d.Length(MaxMembers)
		for i := 0; i < n && d.Err() == nil; i++ {
			var a protocol.Address
			d.FixedInto(a[:])
			if d.Err() == nil && i > 0 && p.Voters[i-1].Compare(a) >= 0 {
				d.Fail(fmt.Errorf("%w: voters unsorted or repeated", ErrMalformed))
			}
			p.Voters = append(p.Voters, a)
		}
		p.ExecutedAtMs = d.I64()
		if d.Err() == nil && len(p.Voters) == 0 && p.ExecutedAtMs == 0 {
			d.Fail(fmt.Errorf("%w: empty proposal tail written out", ErrMalformed))
		}
	}
}

// encodable is a record with a canonical encoding.
type encodable interface {
	Encode(e *protocol.Encoder)
}

type decodable interface {
	Decode(d *protocol.Decoder)
}

func put(st Store, key []byte, v encodable) {
	e := protocol.NewEncoder(128)
	v.Encode(e)
	st.Put(key, e.Out())
}

// get decodes the record at key into v and reports whether it exists. A
// record that does not decode is a bug in the rules, never user input, so it
// panics.
func get(st Store, key []byte, v decodable) bool {
	b := st.Get(key)
	if b == nil {
		return false
	}
	d := protocol.NewDecoder(b)
	v.Decode(d)
	if err := d.Finish(); err != nil {
		panic(fmt.Sprintf("contract: corrupt record %x: %v", key, err))
	}
	return true
}

type accountRec struct{ *Account }

func (a accountRec) Encode(e *protocol.Encoder) { a.encode(e) }
func (a accountRec) Decode(d *protocol.Decoder) { a.decode(d) }

func getU64(st Store, key []byte) uint64 {
	b := st.Get(key)
	if len(b) != 8 {
		return 0
	}
	d := protocol.NewDecoder(b)
	return d.U64()
}

func putU64(st Store, key []byte, v uint64) {
	if v == 0 {
		st.Delete(key)
		return
	}
	e := protocol.NewEncoder(8)
	e.U64(v)
	st.Put(key, e.Out())
}

// memberList is the sorted list of a channel's member addresses.
type memberList []protocol.Address

func (l *memberList) Encode(e *protocol.Encoder) {
	e.Uleb(uint64(len(*l)))
	for _, a := range *l {
		e.Fixed(a[:])
	}
}

func (l *memberList) Decode(d *protocol.Decoder) {
	n := d.Length(MaxMembers)
	*l = make(memberList, n)
	for i := 0; i < n && d.Err() == nil; i++ {
		d.FixedInto((*l)[i][:])
	}
}
