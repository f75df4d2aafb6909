package protocol

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"filippo.io/edwards25519"
	"github.com/hdevalence/ed25519consensus"
)

// smallOrderEncodings returns every 32-byte string here known to decode to
// a point of order dividing 8: the canonical encodings of the eight
// small-order points, each with its sign bit flipped, and y + p for those
// whose y is below 19 (non-canonical y). These are where ed25519
// implementations disagree.
func smallOrderEncodings(t *testing.T) [][]byte {
	t.Helper()
	raw, _ := hex.DecodeString("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
	p8, err := new(edwards25519.Point).SetBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	// Control: p8 has order exactly 8.
	id := edwards25519.NewIdentityPoint()
	times := func(p *edwards25519.Point, k int) *edwards25519.Point {
		q := edwards25519.NewIdentityPoint()
		for range k {
			q.Add(q, p)
		}
		return q
	}
	if times(p8, 8).Equal(id) != 1 || times(p8, 4).Equal(id) == 1 {
		t.Fatal("control: the generator is not of order 8")
	}
	seen := map[string]bool{}
	var out [][]byte
	add := func(b []byte) {
		if !seen[string(b)] {
			seen[string(b)] = true
			out = append(out, b)
		}
	}
	// p = 2^255 - 19, little-endian.
	p := make([]byte, 32)
	for i := range p {
		p[i] = 0xff
	}
	p[0], p[31] = 0xed, 0x7f
	for k := range 8 {
		enc := times(p8, k).Bytes()
		add(enc)
		flipped := append([]byte(nil), enc...)
		flipped[31] ^= 0x80
		add(flipped)
		y := append([]byte(nil), enc...)
		y[31] &= 0x7f
		small := y[0] < 19
		for _, b := range y[1:] {
			small = small && b == 0
		}
		if small {
			for _, sign := range []byte{0, 0x80} {
				nc := append([]byte(nil), p...)
				nc[0] += y[0] // p + y: no carry, y < 19
				nc[31] |= sign
				add(nc)
			}
		}
	}
	return out
}

// TestZIP215Agreement checks Verify and VerifyBatch against ed25519consensus,
// the reference of the ZIP-215 rules, on the inputs where ed25519
// implementations disagree: every pairing of small-order and non-canonical
// encodings as key and R, with S zero, random, and non-canonical (L and
// above), next to genuine and broken signatures. Any disagreement would let
// two members reach different verdicts.
func TestZIP215Agreement(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	small := smallOrderEncodings(t)
	if len(small) < 14 {
		t.Fatalf("%d small-order encodings, want at least the 14 known", len(small))
	}
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	const domain = "scraft/test/v1"
	msg := []byte("zip215 agreement")
	genuine := ed25519.Sign(priv, domainMessage(domain, msg))
	keys := append(append([][]byte(nil), small...), pub)
	rs := append(append([][]byte(nil), small...), genuine[:32])

	// L, the group order, little-endian; S >= L must be refused.
	order, _ := hex.DecodeString("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
	orderPlus1 := append([]byte(nil), order...)
	orderPlus1[0]++
	allOnes := make([]byte, 32)
	for i := range allOnes {
		allOnes[i] = 0xff
	}
	randS := make([]byte, 32)
	for i := range randS {
		randS[i] = byte(rng.Uint32())
	}
	randS[31] &= 0x0f // below L
	ss := [][]byte{make([]byte, 32), randS, genuine[32:], order, orderPlus1, allOnes}

	var items []SigItem
	var want []bool
	for _, a := range keys {
		for _, r := range rs {
			for _, s := range ss {
				sig := append(append([]byte(nil), r...), s...)
				ref := ed25519consensus.Verify(a, domainMessage(domain, msg), sig)
				if got := Verify(a, domain, msg, sig); got != ref {
					t.Fatalf("key %x R %x S %x: Verify %v, reference %v", a, r, s, got, ref)
				}
				items = append(items, SigItem{PublicKey: a, Domain: domain, Message: msg, Signature: sig})
				want = append(want, ref)
			}
		}
	}
	var nvalid int
	for _, w := range want {
		if w {
			nvalid++
		}
	}
	t.Logf("%d small-order encodings; %d of %d cases valid under ZIP-215", len(small), nvalid, len(want))
	if nvalid == 0 || nvalid == len(want) {
		t.Fatalf("%d of %d valid: the cases do not tell the rules apart", nvalid, len(want))
	}
	if !want[len(want)-len(ss)*len(rs)+len(ss)*(len(rs)-1)+2] {
		t.Fatal("control: the genuine signature is not valid")
	}

	// Batches: all at once, the valid ones alone, and random mixes.
	check := func(name string, idx []int) {
		batch := make([]SigItem, len(idx))
		for j, i := range idx {
			batch[j] = items[i]
		}
		for j, got := range VerifyBatch(batch) {
			if got != want[idx[j]] {
				it := batch[j]
				t.Fatalf("%s: key %x sig %x: batch %v, reference %v", name, it.PublicKey, it.Signature, got, want[idx[j]])
			}
		}
	}
	all := make([]int, len(items))
	var valid []int
	for i := range all {
		all[i] = i
		if want[i] {
			valid = append(valid, i)
		}
	}
	check("all", all)
	check("valid only", valid)
	for round := range 20 {
		n := 2 + rng.IntN(64)
		idx := make([]int, n)
		for j := range idx {
			idx[j] = rng.IntN(len(items))
		}
		check("mix "+string(rune('a'+round)), idx)
	}

	// Malformed lengths are refused on both paths.
	if Verify(pub[:31], domain, msg, genuine) || Verify(pub, domain, msg, genuine[:63]) {
		t.Fatal("a short key or signature verified")
	}
	if got := VerifyBatch([]SigItem{{PublicKey: pub[:31], Domain: domain, Message: msg, Signature: genuine}, items[0], {PublicKey: pub, Domain: domain, Message: msg, Signature: genuine}}); got[0] || !got[2] || got[1] != want[0] {
		t.Fatalf("batch with a short key: %v", got)
	}
}

// TestSignMatchesStandard: Key.Sign (voi) makes byte for byte the
// signature crypto/ed25519 makes, for random keys and messages of every
// length up to 300 bytes.
func TestSignMatchesStandard(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for i := range 300 {
		seed := make([]byte, ed25519.SeedSize)
		for j := range seed {
			seed[j] = byte(r.Uint32())
		}
		k := newKey(ed25519.NewKeyFromSeed(seed))
		msg := make([]byte, i)
		for j := range msg {
			msg[j] = byte(r.Uint32())
		}
		got := k.Sign(DomainTx, msg)
		want := ed25519.Sign(k.priv, domainMessage(DomainTx, msg))
		if !bytes.Equal(got, want) {
			t.Fatalf("message of %d bytes: signature %x, crypto/ed25519 %x", i, got, want)
		}
	}
}
