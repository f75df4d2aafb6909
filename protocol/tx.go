package protocol

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
)

// Hash is a SHA-256 digest.
type Hash [32]byte

func (h Hash) String() string { return fmt.Sprintf("%x", h[:]) }

// IsZero reports whether h is all zeroes.
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// HashOf hashes a domain tag and a canonical encoding.
func HashOf(domain string, enc []byte) Hash {
	s := sha256.New()
	s.Write([]byte(domain))
	s.Write([]byte{0})
	s.Write(enc)
	var h Hash
	s.Sum(h[:0])
	return h
}

// Signing and hashing domains. Each kind of signed or hashed message has its
// own, so no encoding can be taken for another.
const (
	DomainTx          = "scraft/tx/v1"
	DomainEntry       = "scraft/entry/v1"
	DomainBatch       = "scraft/batch/v1"
	DomainResult      = "scraft/result/v1"
	DomainDigest      = "scraft/digest/v1"
	DomainChangeSet   = "scraft/changeset/v1"
	DomainEvents      = "scraft/events/v1"
	DomainOutput      = "scraft/output/v1"
	DomainVote        = "scraft/vote/v1"
	DomainProposal    = "scraft/proposal/v1"
	DomainAttestation = "scraft/attestation/v1"
)

// Limits on a transaction's fields.
const (
	MaxArgsLen     = 64 << 10
	MaxTypeArgs    = 16
	MaxFunctionLen = 128
)

var (
	// ErrBadFunction means a function name is not of the form contract::name.
	ErrBadFunction = errors.New("protocol: function must be contract::name")
	// ErrWrongChannel means a message names another channel.
	ErrWrongChannel = errors.New("protocol: wrong channel")
)

// Tx is a member's call of a channel contract function.
type Tx struct {
	Channel ChannelID
	Sender  Address
	// Nonce is the sender's sequence number in this channel: the first tx
	// has nonce 1 and each next one the next number. It makes replays fail.
	Nonce uint64
	// Function is "contract::name", e.g. "chat::send".
	Function string
	TypeArgs []string
	Args     []byte
	// TimestampMs is the client's clock when it signed, informational only;
	// contracts see the leader's timestamp.
	TimestampMs uint64
}

// Encode writes the canonical encoding of t.
func (t *Tx) Encode(e *Encoder) {
	e.Fixed(t.Channel[:])
	e.Fixed(t.Sender[:])
	e.U64(t.Nonce)
	e.String(t.Function)
	e.Uleb(uint64(len(t.TypeArgs)))
	for _, a := range t.TypeArgs {
		e.String(a)
	}
	e.Bytes(t.Args)
	e.U64(t.TimestampMs)
}

// Decode reads t from d.
func (t *Tx) Decode(d *Decoder) {
	d.FixedInto(t.Channel[:])
	d.FixedInto(t.Sender[:])
	t.Nonce = d.U64()
	t.Function = d.String(MaxFunctionLen)
	n := d.Length(MaxTypeArgs)
	t.TypeArgs = nil
	for i := 0; i < n && d.Err() == nil; i++ {
		t.TypeArgs = append(t.TypeArgs, d.String(MaxNameLen))
	}
	t.Args = d.Bytes(MaxArgsLen)
	t.TimestampMs = d.U64()
	if d.Err() == nil {
		if err := ValidateFunction(t.Function); err != nil {
			d.Fail(err)
		}
	}
}

// Bytes returns the canonical encoding of t.
func (t *Tx) Bytes() []byte {
	e := NewEncoder(64 + len(t.Function) + len(t.Args))
	t.Encode(e)
	return e.Out()
}

// ValidateFunction checks that name is "contract::function" with both parts
// non-empty identifiers.
func ValidateFunction(name string) error {
	c, f, ok := strings.Cut(name, "::")
	if !ok || !isIdent(c) || !isIdent(f) {
		return fmt.Errorf("%w: %q", ErrBadFunction, name)
	}
	return nil
}

func isIdent(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// SignedTx is a Tx with its sender's public key and signature. The leader
// cannot forge or change it.
type SignedTx struct {
	Tx        Tx
	PublicKey ed25519.PublicKey
	Signature []byte
}

// SignTx signs t with k. It sets t.Sender to k's address.
func SignTx(k *Key, t Tx) *SignedTx {
	t.Sender = k.Address()
	return &SignedTx{Tx: t, PublicKey: k.Public(), Signature: k.Sign(DomainTx, t.Bytes())}
}

// Encode writes the canonical encoding of s.
func (s *SignedTx) Encode(e *Encoder) {
	s.Tx.Encode(e)
	e.Fixed(padKey(s.PublicKey))
	e.Fixed(padSig(s.Signature))
}

// Decode reads s from d.
func (s *SignedTx) Decode(d *Decoder) {
	s.Tx.Decode(d)
	s.PublicKey = d.Fixed(ed25519.PublicKeySize)
	s.Signature = d.Fixed(ed25519.SignatureSize)
}

// Bytes returns the canonical encoding of s.
func (s *SignedTx) Bytes() []byte {
	e := NewEncoder(160 + len(s.Tx.Args))
	s.Encode(e)
	return e.Out()
}

// DecodeSignedTx decodes one SignedTx and refuses trailing bytes.
func DecodeSignedTx(b []byte) (*SignedTx, error) {
	d := NewDecoder(b)
	var s SignedTx
	s.Decode(d)
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("decode tx: %w", err)
	}
	return &s, nil
}

// Hash identifies the tx: it covers the tx and its signature's key, so the
// same tx resubmitted has the same hash (submission is idempotent by hash).
func (s *SignedTx) Hash() Hash { return HashOf(DomainTx, s.Tx.Bytes()) }

// Verify checks that the key matches the sender and the signature is valid.
func (s *SignedTx) Verify() error {
	if AddressOf(s.PublicKey) != s.Tx.Sender {
		return ErrKeyMismatch
	}
	if !Verify(s.PublicKey, DomainTx, s.Tx.Bytes(), s.Signature) {
		return ErrBadSignature
	}
	return nil
}

// SigItem returns the item to check s in VerifyBatch.
func (s *SignedTx) SigItem() SigItem {
	return SigItem{PublicKey: s.PublicKey, Domain: DomainTx, Message: s.Tx.Bytes(), Signature: s.Signature}
}

// VerifyTxs checks many signed txs with one batch verification and returns
// one error (nil when valid) per tx.
func VerifyTxs(txs []*SignedTx) []error {
	errs := make([]error, len(txs))
	items := make([]SigItem, 0, len(txs))
	idx := make([]int, 0, len(txs))
	for i, s := range txs {
		if AddressOf(s.PublicKey) != s.Tx.Sender {
			errs[i] = ErrKeyMismatch
			continue
		}
		items = append(items, s.SigItem())
		idx = append(idx, i)
	}
	for j, ok := range VerifyBatch(items) {
		if !ok {
			errs[idx[j]] = ErrBadSignature
		}
	}
	return errs
}

// padKey and padSig keep encodings fixed-width even for a malformed key or
// signature, which then simply fails to verify.
func padKey(b []byte) []byte {
	if len(b) == ed25519.PublicKeySize {
		return b
	}
	p := make([]byte, ed25519.PublicKeySize)
	copy(p, b)
	return p
}

func padSig(b []byte) []byte {
	if len(b) == ed25519.SignatureSize {
		return b
	}
	p := make([]byte, ed25519.SignatureSize)
	copy(p, b)
	return p
}
