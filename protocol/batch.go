package protocol

import (
	"crypto/ed25519"
	"errors"
	"fmt"
)

// Event is something a contract emitted. Types scraft::Leave and
// scraft::Close ask the node to leave or close the channel.
type Event struct {
	Type string
	Data []byte
}

// Reserved event types.
const (
	EventLeave = "scraft::Leave"
	EventClose = "scraft::Close"
)

// MaxEvents bounds the events of one tx.
const MaxEvents = 1024

// EncodeEvents writes a vector of events.
func EncodeEvents(e *Encoder, evs []Event) {
	e.Uleb(uint64(len(evs)))
	for _, ev := range evs {
		e.String(ev.Type)
		e.Bytes(ev.Data)
	}
}

// DecodeEvents reads a vector of events.
func DecodeEvents(d *Decoder) []Event {
	n := d.Length(MaxEvents)
	var evs []Event
	for i := 0; i < n && d.Err() == nil; i++ {
		evs = append(evs, Event{Type: d.String(MaxTypeLen), Data: d.Bytes(MaxValueLen)})
	}
	return evs
}

// EventsHash hashes a tx's events in order.
func EventsHash(evs []Event) Hash {
	e := NewEncoder(16)
	EncodeEvents(e, evs)
	return HashOf(DomainEvents, e.Out())
}

// EntryKind tells a user call from the system txs the leader makes.
type EntryKind uint8

// The kinds of log entry.
const (
	EntryCall  EntryKind = 1 // a member's signed call
	EntryJoin  EntryKind = 2 // a member joins, as recorded on chain
	EntryLeave EntryKind = 3 // a member leaves
	EntryTick  EntryKind = 4 // a game tick
)

func (k EntryKind) String() string {
	switch k {
	case EntryCall:
		return "call"
	case EntryJoin:
		return "join"
	case EntryLeave:
		return "leave"
	case EntryTick:
		return "tick"
	}
	return fmt.Sprintf("entry(%d)", uint8(k))
}

// MemberJoin is the system tx that admits a member. Followers check it
// against the chain: the member must hold this join sequence number there.
type MemberJoin struct {
	Member    Address
	PublicKey ed25519.PublicKey
	JoinSeq   uint64
}

// MemberLeave is the system tx that removes a member.
type MemberLeave struct {
	Member Address
}

// Tick is the system tx that advances a game world. Numbers start at 1 and
// grow by one; followers check the spacing of TimestampMs against the
// channel's tick interval.
type Tick struct {
	Number      uint64
	TimestampMs uint64
}

// Entry is one transaction at one height.
type Entry struct {
	Kind  EntryKind
	Call  *SignedTx    // EntryCall
	Join  *MemberJoin  // EntryJoin
	Leave *MemberLeave // EntryLeave
	Tick  *Tick        // EntryTick
}

// Encode writes the canonical encoding of en.
func (en *Entry) Encode(e *Encoder) {
	e.U8(uint8(en.Kind))
	switch en.Kind {
	case EntryCall:
		en.Call.Encode(e)
	case EntryJoin:
		e.Fixed(en.Join.Member[:])
		e.Fixed(padKey(en.Join.PublicKey))
		e.U64(en.Join.JoinSeq)
	case EntryLeave:
		e.Fixed(en.Leave.Member[:])
	case EntryTick:
		e.U64(en.Tick.Number)
		e.U64(en.Tick.TimestampMs)
	}
}

// Decode reads en from d.
func (en *Entry) Decode(d *Decoder) {
	*en = Entry{Kind: EntryKind(d.U8())}
	switch en.Kind {
	case EntryCall:
		en.Call = new(SignedTx)
		en.Call.Decode(d)
	case EntryJoin:
		en.Join = new(MemberJoin)
		d.FixedInto(en.Join.Member[:])
		en.Join.PublicKey = d.Fixed(ed25519.PublicKeySize)
		en.Join.JoinSeq = d.U64()
	case EntryLeave:
		en.Leave = new(MemberLeave)
		d.FixedInto(en.Leave.Member[:])
	case EntryTick:
		en.Tick = new(Tick)
		en.Tick.Number = d.U64()
		en.Tick.TimestampMs = d.U64()
	default:
		d.Fail(fmt.Errorf("protocol: unknown entry kind %d", en.Kind))
	}
}

// Bytes returns the canonical encoding of en.
func (en *Entry) Bytes() []byte {
	e := NewEncoder(64)
	en.Encode(e)
	return e.Out()
}

// Hash identifies the entry in the digest chain. A call's entry hash is its
// tx hash, so clients can find their tx by the hash they computed.
func (en *Entry) Hash() Hash {
	if en.Kind == EntryCall {
		return en.Call.Hash()
	}
	return HashOf(DomainEntry, en.Bytes())
}

// Status is the outcome of one entry.
type Status uint8

// Entry outcomes. Every failure is a result, never a crash: the entry still
// takes its height, its changes are dropped, its gas is spent.
const (
	StatusOK            Status = 0
	StatusAbort         Status = 1  // the contract aborted (code in the result)
	StatusOutOfGas      Status = 2  // gas ran out
	StatusTrap          Status = 3  // a WASM trap (bad memory access, unreachable, ...)
	StatusMemoryLimit   Status = 4  // memory would grow past the limit
	StatusStackLimit    Status = 5  // call depth past the limit
	StatusInvalidModule Status = 6  // the code cannot run
	StatusBadInput      Status = 7  // unknown function, malformed args
	StatusBadSignature  Status = 8  // sender signature does not verify
	StatusBadNonce      Status = 9  // nonce is not the sender's next
	StatusNotMember     Status = 10 // sender is not a member
	StatusRejected      Status = 11 // a system tx that the rules refuse
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusAbort:
		return "abort"
	case StatusOutOfGas:
		return "out_of_gas"
	case StatusTrap:
		return "trap"
	case StatusMemoryLimit:
		return "memory_limit"
	case StatusStackLimit:
		return "stack_limit"
	case StatusInvalidModule:
		return "invalid_module"
	case StatusBadInput:
		return "bad_input"
	case StatusBadSignature:
		return "bad_signature"
	case StatusBadNonce:
		return "bad_nonce"
	case StatusNotMember:
		return "not_member"
	case StatusRejected:
		return "rejected"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// MarshalText implements encoding.TextMarshaler.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Result is the digest of one entry's execution, what the leader puts in a
// batch and every follower recomputes.
type Result struct {
	Status    Status
	AbortCode uint32
	GasUsed   uint64
	ChangeSet Hash
	Events    Hash
	Output    Hash
}

// Encode writes the canonical encoding of r.
func (r *Result) Encode(e *Encoder) {
	e.U8(uint8(r.Status))
	e.U32(r.AbortCode)
	e.U64(r.GasUsed)
	e.Fixed(r.ChangeSet[:])
	e.Fixed(r.Events[:])
	e.Fixed(r.Output[:])
}

// Decode reads r from d.
func (r *Result) Decode(d *Decoder) {
	r.Status = Status(d.U8())
	r.AbortCode = d.U32()
	r.GasUsed = d.U64()
	d.FixedInto(r.ChangeSet[:])
	d.FixedInto(r.Events[:])
	d.FixedInto(r.Output[:])
}

// Hash returns the hash of r's encoding.
func (r *Result) Hash() Hash {
	e := NewEncoder(110)
	r.Encode(e)
	return HashOf(DomainResult, e.Out())
}

// OutputHash hashes a call's return value.
func OutputHash(out []byte) Hash { return HashOf(DomainOutput, out) }

// NextDigest extends the chained channel digest by one entry:
// D(h) = H(D(h-1) ‖ entry hash ‖ result hash), where the result hash covers
// status, abort code, gas, change-set hash, events hash and output hash.
// Two members with the same D(h) have the same history and state.
func NextDigest(prev Hash, entry Hash, r *Result) Hash {
	rh := r.Hash()
	b := make([]byte, 0, 96)
	b = append(b, prev[:]...)
	b = append(b, entry[:]...)
	b = append(b, rh[:]...)
	return HashOf(DomainDigest, b)
}

// Limits on a batch.
const (
	MaxBatchEntries = 4096
	MaxBatchBytes   = 16 << 20
)

// ErrBadBatch means a batch is malformed.
var ErrBadBatch = errors.New("protocol: malformed batch")

// Batch is what the Raft log carries: entries at consecutive heights, the
// leader's result for each and the digest after the last, signed by the
// leader for its epoch.
type Batch struct {
	Channel     ChannelID
	Epoch       uint64
	FirstHeight uint64
	// TimestampMs is the leader's clock when it made the batch; contracts see
	// it as timestamp_ms(). Followers require it not to go backwards.
	TimestampMs uint64
	Entries     []Entry
	Results     []Result
	// Digest is D(FirstHeight + len(Entries) - 1).
	Digest Hash
	Leader Address
	// PublicKey and Signature are the leader's, over the encoding of every
	// field above.
	PublicKey ed25519.PublicKey
	Signature []byte
}

func (b *Batch) encodeBody(e *Encoder) {
	e.Fixed(b.Channel[:])
	e.U64(b.Epoch)
	e.U64(b.FirstHeight)
	e.U64(b.TimestampMs)
	e.Uleb(uint64(len(b.Entries)))
	for i := range b.Entries {
		b.Entries[i].Encode(e)
	}
	e.Uleb(uint64(len(b.Results)))
	for i := range b.Results {
		b.Results[i].Encode(e)
	}
	e.Fixed(b.Digest[:])
	e.Fixed(b.Leader[:])
}

// sizeHint is about the length of b's encoding, a little more for calls:
// room to encode it without growing the buffer as it goes.
func (b *Batch) sizeHint() int {
	n := 256 + len(b.Results)*110
	for i := range b.Entries {
		n += 64
		if c := b.Entries[i].Call; c != nil {
			n += 192 + len(c.Tx.Function) + len(c.Tx.Args)
			for _, a := range c.Tx.TypeArgs {
				n += 8 + len(a)
			}
		}
	}
	return n
}

// Body returns the signed part of the encoding.
func (b *Batch) Body() []byte {
	e := NewEncoder(b.sizeHint())
	b.encodeBody(e)
	return e.Out()
}

// Sign sets Leader, PublicKey and Signature from k.
func (b *Batch) Sign(k *Key) {
	b.Leader = k.Address()
	b.PublicKey = k.Public()
	b.Signature = k.Sign(DomainBatch, b.Body())
}

// VerifySignature checks the leader's key and signature.
func (b *Batch) VerifySignature() error {
	if AddressOf(b.PublicKey) != b.Leader {
		return ErrKeyMismatch
	}
	if !Verify(b.PublicKey, DomainBatch, b.Body(), b.Signature) {
		return ErrBadSignature
	}
	return nil
}

// Encode writes the whole batch, signature included.
func (b *Batch) Encode(e *Encoder) {
	b.encodeBody(e)
	e.Fixed(padKey(b.PublicKey))
	e.Fixed(padSig(b.Signature))
}

// Bytes returns the canonical encoding of the signed batch.
func (b *Batch) Bytes() []byte {
	e := NewEncoder(b.sizeHint())
	b.Encode(e)
	return e.Out()
}

// DecodeBatch decodes a signed batch and checks its shape (one result per
// entry, at least one entry, heights that do not overflow). It does not
// verify the signature.
func DecodeBatch(buf []byte) (*Batch, error) {
	if len(buf) > MaxBatchBytes {
		return nil, fmt.Errorf("decode batch: %w: %d bytes", ErrTooLong, len(buf))
	}
	d := NewDecoder(buf)
	b := new(Batch)
	d.FixedInto(b.Channel[:])
	b.Epoch = d.U64()
	b.FirstHeight = d.U64()
	b.TimestampMs = d.U64()
	n := d.Length(MaxBatchEntries)
	for i := 0; i < n && d.Err() == nil; i++ {
		var en Entry
		en.Decode(d)
		b.Entries = append(b.Entries, en)
	}
	m := d.Length(MaxBatchEntries)
	for i := 0; i < m && d.Err() == nil; i++ {
		var r Result
		r.Decode(d)
		b.Results = append(b.Results, r)
	}
	d.FixedInto(b.Digest[:])
	d.FixedInto(b.Leader[:])
	b.PublicKey = d.Fixed(ed25519.PublicKeySize)
	b.Signature = d.Fixed(ed25519.SignatureSize)
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("decode batch: %w", err)
	}
	if err := b.checkShape(); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *Batch) checkShape() error {
	switch {
	case len(b.Entries) == 0:
		return fmt.Errorf("%w: no entries", ErrBadBatch)
	case len(b.Entries) != len(b.Results):
		return fmt.Errorf("%w: %d entries but %d results", ErrBadBatch, len(b.Entries), len(b.Results))
	case b.FirstHeight == 0:
		return fmt.Errorf("%w: height 0", ErrBadBatch)
	case b.FirstHeight+uint64(len(b.Entries)) < b.FirstHeight:
		return fmt.Errorf("%w: height overflows", ErrBadBatch)
	}
	return nil
}

// LastHeight returns the height of the batch's last entry.
func (b *Batch) LastHeight() uint64 { return b.FirstHeight + uint64(len(b.Entries)) - 1 }
