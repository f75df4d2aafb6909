package devchain

import (
	"crypto/ed25519"
	"fmt"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// DomainChainTx is the signing domain of chain txs.
const DomainChainTx = "scraft/chaintx/v1"

// Tx is a chain tx: one contract call by Sender, with the sender's nonce
// (1 for its first tx, then +1 each) so a signed tx cannot be replayed.
type Tx struct {
	Sender protocol.Address
	Nonce  uint64
	Call   []byte // contract.EncodeCall
}

func (t *Tx) body() []byte {
	e := protocol.NewEncoder(32 + len(t.Call))
	e.Fixed(t.Sender[:])
	e.U64(t.Nonce)
	e.Bytes(t.Call)
	return e.Out()
}

// SignedTx is a Tx with the sender's public key and signature.
type SignedTx struct {
	Tx
	PublicKey ed25519.PublicKey
	Signature []byte
}

// NewTx signs call for k with nonce.
func NewTx(k *protocol.Key, nonce uint64, call contract.Call) *SignedTx {
	t := Tx{Sender: k.Address(), Nonce: nonce, Call: contract.EncodeCall(call)}
	return &SignedTx{Tx: t, PublicKey: k.Public(), Signature: k.Sign(DomainChainTx, t.body())}
}

// Bytes returns the canonical encoding.
func (s *SignedTx) Bytes() []byte {
	e := protocol.NewEncoder(128 + len(s.Call))
	e.Fixed(s.Tx.body())
	e.Bytes(s.PublicKey)
	e.Bytes(s.Signature)
	return e.Out()
}

// Hash identifies the tx.
func (s *SignedTx) Hash() protocol.Hash { return protocol.HashOf(DomainChainTx, s.Tx.body()) }

// sigItem returns the signature check of s for protocol.VerifyBatch.
func (s *SignedTx) sigItem() protocol.SigItem {
	return protocol.SigItem{PublicKey: s.PublicKey, Domain: DomainChainTx, Message: s.Tx.body(), Signature: s.Signature}
}

// DecodeTx decodes a signed chain tx of at most maxLen bytes. It checks the
// shape (key matches sender, sizes) but not the signature.
func DecodeTx(b []byte, maxLen int) (*SignedTx, error) {
	if len(b) > maxLen {
		return nil, fmt.Errorf("%w: tx of %d bytes (max %d)", ErrTooLarge, len(b), maxLen)
	}
	d := protocol.NewDecoder(b)
	var s SignedTx
	d.FixedInto(s.Sender[:])
	s.Nonce = d.U64()
	s.Call = d.Bytes(maxLen)
	s.PublicKey = d.Bytes(ed25519.PublicKeySize)
	s.Signature = d.Bytes(ed25519.SignatureSize)
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedTx, err)
	}
	switch {
	case len(s.PublicKey) != ed25519.PublicKeySize || len(s.Signature) != ed25519.SignatureSize:
		return nil, fmt.Errorf("%w: key or signature missing", ErrUnsigned)
	case protocol.AddressOf(s.PublicKey) != s.Sender:
		return nil, fmt.Errorf("%w: key does not match sender %s", ErrBadSignature, s.Sender)
	case s.Nonce == 0:
		return nil, fmt.Errorf("%w: nonce 0", ErrBadNonce)
	}
	return &s, nil
}
