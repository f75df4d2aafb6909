package protocol

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
)

func randBytes(r *rand.Rand, max int) []byte {
	b := make([]byte, r.IntN(max+1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randAddr(r *rand.Rand) (a Address) {
	copy(a[:], randBytes(r, AddressLen))
	return a
}

func randTx(r *rand.Rand) *SignedTx {
	k, _ := KeyFromSeed(bytes.Repeat([]byte{byte(r.Uint32())}, 32))
	t := Tx{
		Nonce:       r.Uint64(),
		Function:    []string{"chat::send", "movecraft::place_block", "editor::update_element"}[r.IntN(3)],
		Args:        randBytes(r, 40),
		TimestampMs: r.Uint64(),
	}
	copy(t.Channel[:], randBytes(r, 16))
	for range r.IntN(3) {
		t.TypeArgs = append(t.TypeArgs, "u64")
	}
	return SignTx(k, t)
}

func randChangeSet(r *rand.Rand) ChangeSet {
	var cs []Change
	for i := range r.IntN(5) {
		c := Change{Key: ResourceKey{Account: randAddr(r), Type: "t::T" + string(rune('a'+i))}, Kind: OpKind(1 + r.IntN(3))}
		switch c.Kind {
		case OpNew:
			c.New = nonNil(randBytes(r, 8))
		case OpModify:
			c.Old, c.New = nonNil(randBytes(r, 8)), nonNil(randBytes(r, 8))
		case OpDelete:
			c.Old = nonNil(randBytes(r, 8))
		}
		cs = append(cs, c)
	}
	out, err := NewChangeSet(cs)
	if err != nil {
		panic(err)
	}
	return out
}

// decode(encode(x)) == x for random values of every encoded type.
func TestRandomRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		tx := randTx(r)
		got, err := DecodeSignedTx(tx.Bytes())
		if err != nil || !reflect.DeepEqual(normTx(got), normTx(tx)) {
			t.Fatalf("%d: tx round trip: %v", i, err)
		}
		cs := randChangeSet(r)
		gcs, err := DecodeChangeSet(cs.Bytes())
		if err != nil || !reflect.DeepEqual(gcs, cs) && !(cs.Len() == 0 && gcs.Len() == 0) {
			t.Fatalf("%d: change set round trip: %v", i, err)
		}
		s := &Settlement{From: 1 + r.Uint64()%100, ChangeSet: cs}
		s.To = s.From + r.Uint64()%100
		if i%2 == 0 {
			s.StateHash[0], s.StateHash[31] = byte(i), 1
		}
		var gs Settlement
		if err := Unmarshal(Marshal(s), &gs); err != nil || !bytes.Equal(Marshal(&gs), Marshal(s)) {
			t.Fatalf("%d: settlement round trip: %v", i, err)
		}
		b := &Batch{Channel: tx.Tx.Channel, Epoch: r.Uint64(), FirstHeight: 1 + r.Uint64()%1000, TimestampMs: r.Uint64()}
		for range 1 + r.IntN(4) {
			b.Entries = append(b.Entries, Entry{Kind: EntryCall, Call: randTx(r)})
			b.Results = append(b.Results, Result{Status: Status(r.IntN(12)), GasUsed: r.Uint64(), ChangeSet: randChangeSet(r).Hash()})
		}
		b.Sign(testKey(t, byte(i)))
		gb, err := DecodeBatch(b.Bytes())
		if err != nil || !bytes.Equal(gb.Bytes(), b.Bytes()) || gb.VerifySignature() != nil {
			t.Fatalf("%d: batch round trip: %v", i, err)
		}
	}
}

// normTx maps the empty and nil forms that share one encoding together.
func normTx(s *SignedTx) *SignedTx {
	c := *s
	if len(c.Tx.Args) == 0 {
		c.Tx.Args = nil
	}
	if len(c.Tx.TypeArgs) == 0 {
		c.Tx.TypeArgs = nil
	}
	return &c
}
