package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func testKey(t testing.TB, seed byte) *Key {
	t.Helper()
	k, err := KeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestAddressText(t *testing.T) {
	k := testKey(t, 1)
	s := k.Address().String()
	if len(s) != 34 || s[:2] != "0x" {
		t.Fatalf("address %q", s)
	}
	a, err := ParseAddress(s)
	if err != nil || a != k.Address() {
		t.Fatalf("parse %q: %v", s, err)
	}
	for _, bad := range []string{"", "0x12", s[2:], s + "00", "0x" + string(bytes.Repeat([]byte("g"), 32))} {
		if _, err := ParseAddress(bad); !errors.Is(err, ErrBadAddress) {
			t.Errorf("ParseAddress(%q) = %v", bad, err)
		}
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k.json")
	k := testKey(t, 2)
	if err := SaveKey(path, k); err != nil {
		t.Fatal(err)
	}
	if err := SaveKey(path, k); err == nil {
		t.Fatal("SaveKey overwrote an existing file")
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	got, err := LoadKey(path)
	if err != nil || got.Address() != k.Address() {
		t.Fatalf("load: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(path); !errors.Is(err, ErrKeyFileMode) {
		t.Fatalf("world-readable key loaded: %v", err)
	}
}

func sampleTx(k *Key) *SignedTx {
	return SignTx(k, Tx{
		Channel:     ChannelID{1, 2, 3},
		Nonce:       7,
		Function:    "chat::send",
		TypeArgs:    []string{"u64"},
		Args:        []byte("hello"),
		TimestampMs: 1234,
	})
}

// Changing any byte of a signed tx's encoding must make it fail to decode
// or fail to verify.
func TestSignatureCoversEveryByte(t *testing.T) {
	s := sampleTx(testKey(t, 3))
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	enc := s.Bytes()
	for i := range enc {
		b := bytes.Clone(enc)
		b[i] ^= 0x01
		got, err := DecodeSignedTx(b)
		if err != nil {
			continue
		}
		if got.Verify() == nil {
			t.Fatalf("flipping byte %d still verifies", i)
		}
	}
}

func TestVerifyTxsFindsBadOnes(t *testing.T) {
	var txs []*SignedTx
	for i := range 10 {
		s := sampleTx(testKey(t, byte(10+i)))
		txs = append(txs, s)
	}
	txs[3].Signature = bytes.Clone(txs[3].Signature)
	txs[3].Signature[0] ^= 1
	txs[7].Tx.Sender[0] ^= 1
	errs := VerifyTxs(txs)
	for i, err := range errs {
		switch i {
		case 3:
			if !errors.Is(err, ErrBadSignature) {
				t.Errorf("tx 3: %v", err)
			}
		case 7:
			if !errors.Is(err, ErrKeyMismatch) {
				t.Errorf("tx 7: %v", err)
			}
		default:
			if err != nil {
				t.Errorf("tx %d: %v", i, err)
			}
		}
	}
}

func TestSignDomainsSeparate(t *testing.T) {
	k := testKey(t, 4)
	msg := []byte("m")
	sig := k.Sign(DomainVote, msg)
	if !Verify(k.Public(), DomainVote, msg, sig) || Verify(k.Public(), DomainTx, msg, sig) {
		t.Fatal("signature must verify only in its own domain")
	}
}

func TestBatchRoundTripAndSignature(t *testing.T) {
	k := testKey(t, 5)
	b := &Batch{
		Channel: ChannelID{9}, Epoch: 3, FirstHeight: 10, TimestampMs: 99,
		Entries: []Entry{
			{Kind: EntryCall, Call: sampleTx(testKey(t, 6))},
			{Kind: EntryJoin, Join: &MemberJoin{Member: Address{1}, PublicKey: testKey(t, 7).Public(), JoinSeq: 4}},
			{Kind: EntryLeave, Leave: &MemberLeave{Member: Address{2}}},
			{Kind: EntryTick, Tick: &Tick{Number: 5, TimestampMs: 100}},
		},
		Results: make([]Result, 4),
		Digest:  Hash{1},
	}
	b.Sign(k)
	got, err := DecodeBatch(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), b.Bytes()) {
		t.Fatal("batch changed in a round trip")
	}
	if err := got.VerifySignature(); err != nil {
		t.Fatal(err)
	}
	if got.LastHeight() != 13 {
		t.Fatalf("last height %d", got.LastHeight())
	}
	got.Epoch++
	if got.VerifySignature() == nil {
		t.Fatal("changed batch still verifies")
	}
	b.Results = b.Results[:3]
	if _, err := DecodeBatch(b.Bytes()); !errors.Is(err, ErrBadBatch) {
		t.Fatalf("mismatched results accepted: %v", err)
	}
}

func TestVoteAndAttestation(t *testing.T) {
	k := testKey(t, 8)
	v := &Vote{Channel: ChannelID{1}, Proposal: 2, Option: VoteFor}
	v.Sign(k)
	var got Vote
	if err := Unmarshal(Marshal(v), &got); err != nil || got.Verify() != nil {
		t.Fatalf("vote round trip: %v %v", err, got.Verify())
	}
	got.Option = VoteAgainst
	if got.Verify() == nil {
		t.Fatal("changed vote verifies")
	}
	a := &Attestation{Channel: ChannelID{1}, Epoch: 4, Claimant: Address{3}}
	a.Sign(k)
	var ga Attestation
	if err := Unmarshal(Marshal(a), &ga); err != nil || ga.Verify() != nil {
		t.Fatal("attestation round trip")
	}
}

func TestDigestChains(t *testing.T) {
	r := Result{Status: StatusOK, GasUsed: 5}
	d1 := NextDigest(Hash{}, Hash{1}, &r)
	d2 := NextDigest(d1, Hash{2}, &r)
	r2 := r
	r2.GasUsed++
	if NextDigest(d1, Hash{2}, &r2) == d2 || NextDigest(Hash{}, Hash{1}, &r) != d1 {
		t.Fatal("digest must depend on every input and nothing else")
	}
}

// randomState makes a small state with keys drawn from a tiny space so that
// successive states overlap.
func randomState(r *rand.Rand) State {
	s := State{}
	for range r.IntN(6) {
		k := ResourceKey{Account: Address{byte(r.IntN(3))}, Type: []string{"a::A", "a::B"}[r.IntN(2)]}
		s[k] = []byte{byte(r.IntN(3))}
	}
	return s
}

// Merging the per-step change sets of a history equals diffing its first
// and last states, and merging is associative over ranges.
func TestMergeMatchesDiff(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 2000 {
		states := []State{randomState(r)}
		var sets []ChangeSet
		for range 1 + r.IntN(6) {
			next := randomState(r)
			sets = append(sets, Diff(states[len(states)-1], next))
			states = append(states, next)
		}
		net, err := MergeAll(sets)
		if err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		want := Diff(states[0], states[len(states)-1])
		if !net.Equal(want) {
			t.Fatalf("iter %d: merged %v, diff %v", iter, net, want)
		}
		// Associativity: split anywhere, merge both halves, merge the results.
		cut := r.IntN(len(sets) + 1)
		left, err1 := MergeAll(sets[:cut])
		right, err2 := MergeAll(sets[cut:])
		both, err3 := Merge(left, right)
		if err1 != nil || err2 != nil || err3 != nil || !both.Equal(net) {
			t.Fatalf("iter %d: not associative at cut %d", iter, cut)
		}
		// Applying the net set to the first state gives the last.
		s := states[0].Clone()
		if err := s.Apply(net); err != nil || s.Hash() != states[len(states)-1].Hash() {
			t.Fatalf("iter %d: apply: %v", iter, err)
		}
	}
}

func TestMergeRefusesImpossible(t *testing.T) {
	k := ResourceKey{Account: Address{1}, Type: "a::A"}
	newer := ChangeSet{Changes: []Change{{Key: k, Kind: OpNew, New: []byte{1}}}}
	del := ChangeSet{Changes: []Change{{Key: k, Kind: OpDelete, Old: []byte{1}}}}
	if _, err := Merge(newer, newer); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("new after new: %v", err)
	}
	if _, err := Merge(del, del); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("delete after delete: %v", err)
	}
}

func TestChangeSetJSONShape(t *testing.T) {
	acc := Address{0x6c, 0x31}
	cs, err := NewChangeSet([]Change{
		{Key: ResourceKey{acc, "editor::Document"}, Kind: OpModify, Old: []byte{1}, New: []byte{2}},
		{Key: ResourceKey{acc, "chat::ChatGroup"}, Kind: OpNew, New: []byte{3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(cs)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"accounts":{"0x6c310000000000000000000000000000":{"chat::ChatGroup":{"new":["03"],"modify":[],"delete":[]},"editor::Document":{"new":[],"modify":[["01","02"]],"delete":[]}}}}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	var back ChangeSet
	if err := json.Unmarshal(b, &back); err != nil || !back.Equal(cs) {
		t.Fatalf("JSON round trip: %v", err)
	}
}

func TestChangeSetDecodeRejectsUnsorted(t *testing.T) {
	a := Change{Key: ResourceKey{Address{2}, "a::A"}, Kind: OpNew, New: []byte{1}}
	b := Change{Key: ResourceKey{Address{1}, "a::A"}, Kind: OpNew, New: []byte{1}}
	for name, cs := range map[string]ChangeSet{
		"unsorted":  {Changes: []Change{a, b}},
		"duplicate": {Changes: []Change{a, a}},
	} {
		if _, err := DecodeChangeSet(cs.Bytes()); !errors.Is(err, ErrNonCanonical) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestBatchSizeHint: the hint leaves room for a batch of calls, so that
// encoding it never grows the buffer.
func TestBatchSizeHint(t *testing.T) {
	b := &Batch{Channel: ChannelID{9}, Epoch: 3, FirstHeight: 10, TimestampMs: 99}
	for i := range 256 {
		b.Entries = append(b.Entries, Entry{Kind: EntryCall, Call: sampleTx(testKey(t, byte(i)))})
		b.Results = append(b.Results, Result{})
	}
	b.Sign(testKey(t, 5))
	if got, hint := len(b.Bytes()), b.sizeHint(); got > hint {
		t.Fatalf("batch of %d entries encodes to %d bytes, hint %d", len(b.Entries), got, hint)
	}
}

// TestSettlementStateHashCompat: a settlement encoded before the state hash
// existed decodes with a zero one and encodes as it was; a zero hash
// written out is refused.
func TestSettlementStateHashCompat(t *testing.T) {
	old := NewEncoder(64)
	old.U64(3)
	old.U64(9)
	ChangeSet{}.Encode(old)
	d := Hash{7}
	old.Fixed(d[:])
	var s Settlement
	if err := Unmarshal(old.Out(), &s); err != nil {
		t.Fatal(err)
	}
	if s.From != 3 || s.To != 9 || s.Digest != d || !s.StateHash.IsZero() {
		t.Fatalf("old settlement decoded as %+v", s)
	}
	if !bytes.Equal(Marshal(&s), old.Out()) {
		t.Fatal("an old settlement does not encode as it was")
	}
	s.StateHash = Hash{8}
	var back Settlement
	if err := Unmarshal(Marshal(&s), &back); err != nil || back.StateHash != s.StateHash {
		t.Fatalf("state hash round trip: %v %s", err, back.StateHash)
	}
	zero := append(bytes.Clone(old.Out()), make([]byte, len(Hash{}))...)
	if err := Unmarshal(zero, &back); !errors.Is(err, ErrNonCanonical) {
		t.Fatalf("a zero state hash written out: %v", err)
	}
}
