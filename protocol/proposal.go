package protocol

import (
	"crypto/ed25519"
	"fmt"
)

// ProposalKind is the type of a proposal on the settlement chain.
type ProposalKind uint8

// Proposal kinds; the numbers are the seed's proposal_type where it has one.
const (
	ProposalSettlement ProposalKind = 1
	ProposalPunish     ProposalKind = 2
	ProposalElection   ProposalKind = 3
	ProposalCensorship ProposalKind = 4
)

func (k ProposalKind) String() string {
	switch k {
	case ProposalSettlement:
		return "settlement"
	case ProposalPunish:
		return "punish"
	case ProposalElection:
		return "leader_election"
	case ProposalCensorship:
		return "censorship"
	}
	return fmt.Sprintf("proposal(%d)", uint8(k))
}

// MarshalText implements encoding.TextMarshaler.
func (k ProposalKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Settlement proposes to settle heights From..To: the net change set over the
// range, the channel digest at To and the machine-state hash at To
// (fsm.Machine.StateHash). From must be the settled height + 1.
type Settlement struct {
	From, To  uint64
	ChangeSet ChangeSet
	Digest    Hash
	// StateHash is the machine-state hash at To. It comes last in the
	// encoding, and a proposal encoded before it existed decodes with it
	// zero (no member votes for one: DESIGN §8).
	StateHash Hash
}

// Encode writes the canonical encoding. A zero StateHash is left out, so
// that the encoding of a settlement filed before the field existed stays
// canonical.
func (s *Settlement) Encode(e *Encoder) {
	e.U64(s.From)
	e.U64(s.To)
	s.ChangeSet.Encode(e)
	e.Fixed(s.Digest[:])
	if !s.StateHash.IsZero() {
		e.Fixed(s.StateHash[:])
	}
}

// Decode reads s, with or without the state hash at the end (proposals
// filed before it existed). A zero state hash written out is not
// canonical.
func (s *Settlement) Decode(d *Decoder) {
	s.From = d.U64()
	s.To = d.U64()
	s.ChangeSet.Decode(d)
	d.FixedInto(s.Digest[:])
	s.StateHash = Hash{}
	if d.Err() == nil && d.Remaining() > 0 {
		d.FixedInto(s.StateHash[:])
		if d.Err() == nil && s.StateHash.IsZero() {
			d.Fail(fmt.Errorf("%w: zero state hash written out", ErrNonCanonical))
		}
	}
	if d.Err() == nil && (s.From == 0 || s.To < s.From) {
		d.Fail(fmt.Errorf("protocol: settlement range %d..%d", s.From, s.To))
	}
}

// Punish accuses the leader that signed Batch of a wrong result for the
// entry at Height. Batch carries the raw tx, the leader's claimed result and
// the leader's signature; Honest is the result the reporter computed, with
// the change set it produced.
type Punish struct {
	Target          Address
	Height          uint64
	Batch           []byte // the leader-signed batch, canonical encoding
	Honest          Result
	HonestChangeSet ChangeSet
	// Reason says what was wrong, for people (e.g. "result digest differs").
	Reason string
	// Conflict, when set, makes the case one of equivocation: another
	// batch the target signed for the same epoch that covers Height with
	// a different body (canonical encoding). Honest is then unused. It is
	// written only when set, so older payloads read the same.
	Conflict []byte
}

// Encode writes the canonical encoding.
func (p *Punish) Encode(e *Encoder) {
	e.Fixed(p.Target[:])
	e.U64(p.Height)
	e.Bytes(p.Batch)
	p.Honest.Encode(e)
	p.HonestChangeSet.Encode(e)
	e.String(p.Reason)
	if len(p.Conflict) > 0 {
		e.Bytes(p.Conflict)
	}
}

// Decode reads p.
func (p *Punish) Decode(d *Decoder) {
	d.FixedInto(p.Target[:])
	p.Height = d.U64()
	p.Batch = d.Bytes(MaxBatchBytes)
	p.Honest.Decode(d)
	p.HonestChangeSet.Decode(d)
	p.Reason = d.String(MaxNameLen)
	p.Conflict = nil
	if d.Err() == nil && d.Remaining() > 0 {
		p.Conflict = d.Bytes(MaxBatchBytes)
		if d.Err() == nil && len(p.Conflict) == 0 {
			d.Fail(fmt.Errorf("%w: empty conflicting batch written out", ErrNonCanonical))
		}
	}
}

// Election proposes Candidate as leader in place of the leader of Epoch.
type Election struct {
	Epoch     uint64
	Candidate Address
}

// Encode writes the canonical encoding.
func (x *Election) Encode(e *Encoder) {
	e.U64(x.Epoch)
	e.Fixed(x.Candidate[:])
}

// Decode reads x.
func (x *Election) Decode(d *Decoder) {
	x.Epoch = d.U64()
	d.FixedInto(x.Candidate[:])
}

// Censorship complains that the leader Accused did not include Tx. The leader
// answers with a batch it signed that holds the tx.
type Censorship struct {
	Accused Address
	Tx      SignedTx
}

// Encode writes the canonical encoding.
func (c *Censorship) Encode(e *Encoder) {
	e.Fixed(c.Accused[:])
	c.Tx.Encode(e)
}

// Decode reads c.
func (c *Censorship) Decode(d *Decoder) {
	d.FixedInto(c.Accused[:])
	c.Tx.Decode(d)
}

// VoteOption is a member's answer to a proposal.
type VoteOption uint8

// Vote options, as in the seed.
const (
	VoteAgainst VoteOption = 0
	VoteFor     VoteOption = 1
	VoteAbstain VoteOption = 2
)

func (o VoteOption) String() string {
	switch o {
	case VoteAgainst:
		return "against"
	case VoteFor:
		return "for"
	case VoteAbstain:
		return "abstain"
	}
	return fmt.Sprintf("option(%d)", uint8(o))
}

// Vote is a member's signed vote. Anyone may carry it to the chain, so a
// delegate can submit its delegators' votes in one chain tx.
type Vote struct {
	Channel  ChannelID
	Proposal uint64
	Voter    Address
	Option   VoteOption

	PublicKey ed25519.PublicKey
	Signature []byte
}

func (v *Vote) body() []byte {
	e := NewEncoder(48)
	e.Fixed(v.Channel[:])
	e.U64(v.Proposal)
	e.Fixed(v.Voter[:])
	e.U8(uint8(v.Option))
	return e.Out()
}

// Sign sets Voter, PublicKey and Signature from k.
func (v *Vote) Sign(k *Key) {
	v.Voter = k.Address()
	v.PublicKey = k.Public()
	v.Signature = k.Sign(DomainVote, v.body())
}

// Verify checks the voter's key and signature and the option's range.
func (v *Vote) Verify() error {
	if v.Option > VoteAbstain {
		return fmt.Errorf("protocol: vote option %d", v.Option)
	}
	if AddressOf(v.PublicKey) != v.Voter {
		return ErrKeyMismatch
	}
	if !Verify(v.PublicKey, DomainVote, v.body(), v.Signature) {
		return ErrBadSignature
	}
	return nil
}

// Encode writes the canonical encoding, signature included.
func (v *Vote) Encode(e *Encoder) {
	e.Fixed(v.body())
	e.Fixed(padKey(v.PublicKey))
	e.Fixed(padSig(v.Signature))
}

// Decode reads v.
func (v *Vote) Decode(d *Decoder) {
	d.FixedInto(v.Channel[:])
	v.Proposal = d.U64()
	d.FixedInto(v.Voter[:])
	v.Option = VoteOption(d.U8())
	v.PublicKey = d.Fixed(ed25519.PublicKeySize)
	v.Signature = d.Fixed(ed25519.SignatureSize)
}

// Attestation is a member's signed statement that the leader of Epoch is
// unreachable and that it supports Claimant as the next leader. More than
// 2/3 of the valid members' attestations let Claimant take over at once
// instead of waiting for the leader's heartbeat to expire.
type Attestation struct {
	Channel  ChannelID
	Epoch    uint64
	Claimant Address
	Attester Address

	PublicKey ed25519.PublicKey
	Signature []byte
}

func (a *Attestation) body() []byte {
	e := NewEncoder(64)
	e.Fixed(a.Channel[:])
	e.U64(a.Epoch)
	e.Fixed(a.Claimant[:])
	e.Fixed(a.Attester[:])
	return e.Out()
}

// Sign sets Attester, PublicKey and Signature from k.
func (a *Attestation) Sign(k *Key) {
	a.Attester = k.Address()
	a.PublicKey = k.Public()
	a.Signature = k.Sign(DomainAttestation, a.body())
}

// Verify checks the attester's key and signature.
func (a *Attestation) Verify() error {
	if AddressOf(a.PublicKey) != a.Attester {
		return ErrKeyMismatch
	}
	if !Verify(a.PublicKey, DomainAttestation, a.body(), a.Signature) {
		return ErrBadSignature
	}
	return nil
}

// Encode writes the canonical encoding, signature included.
func (a *Attestation) Encode(e *Encoder) {
	e.Fixed(a.body())
	e.Fixed(padKey(a.PublicKey))
	e.Fixed(padSig(a.Signature))
}

// Decode reads a.
func (a *Attestation) Decode(d *Decoder) {
	d.FixedInto(a.Channel[:])
	a.Epoch = d.U64()
	d.FixedInto(a.Claimant[:])
	d.FixedInto(a.Attester[:])
	a.PublicKey = d.Fixed(ed25519.PublicKeySize)
	a.Signature = d.Fixed(ed25519.SignatureSize)
}

// Decodable is a value with a canonical Decode method.
type Decodable interface {
	Decode(d *Decoder)
}

// Encodable is a value with a canonical Encode method.
type Encodable interface {
	Encode(e *Encoder)
}

// Marshal returns the canonical encoding of v.
func Marshal(v Encodable) []byte {
	e := NewEncoder(64)
	v.Encode(e)
	return e.Out()
}

// Unmarshal decodes b into v and refuses trailing bytes.
func Unmarshal(b []byte, v Decodable) error {
	d := NewDecoder(b)
	v.Decode(d)
	return d.Finish()
}
