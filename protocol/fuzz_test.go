package protocol

import (
	"bytes"
	"testing"
)

// roundTrip checks that whatever decodes re-encodes to the same bytes: the
// encoding is canonical, so a value has exactly one.
func roundTrip(t *testing.T, b []byte, decode func([]byte) ([]byte, error)) {
	out, err := decode(b)
	if err != nil {
		return
	}
	if !bytes.Equal(out, b) {
		t.Fatalf("decoded and re-encoded differently:\n in  %x\n out %x", b, out)
	}
}

func FuzzDecodeSignedTx(f *testing.F) {
	f.Add(sampleTx(testKey(f, 1)).Bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, func(b []byte) ([]byte, error) {
			s, err := DecodeSignedTx(b)
			if err != nil {
				return nil, err
			}
			_ = s.Verify()
			return s.Bytes(), nil
		})
	})
}

func FuzzDecodeBatch(f *testing.F) {
	b := &Batch{
		Channel: ChannelID{1}, Epoch: 1, FirstHeight: 1,
		Entries: []Entry{{Kind: EntryCall, Call: sampleTx(testKey(f, 2))}, {Kind: EntryTick, Tick: &Tick{Number: 1}}},
		Results: make([]Result, 2),
	}
	b.Sign(testKey(f, 3))
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		roundTrip(t, in, func(in []byte) ([]byte, error) {
			b, err := DecodeBatch(in)
			if err != nil {
				return nil, err
			}
			_ = b.VerifySignature()
			return b.Bytes(), nil
		})
	})
}

func FuzzDecodeChangeSet(f *testing.F) {
	cs, _ := NewChangeSet([]Change{
		{Key: ResourceKey{Address{1}, "a::A"}, Kind: OpNew, New: []byte{1}},
		{Key: ResourceKey{Address{1}, "a::B"}, Kind: OpModify, Old: []byte{1}, New: []byte{}},
		{Key: ResourceKey{Address{2}, "a::A"}, Kind: OpDelete, Old: []byte{7}},
	})
	f.Add(cs.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		roundTrip(t, in, func(in []byte) ([]byte, error) {
			cs, err := DecodeChangeSet(in)
			if err != nil {
				return nil, err
			}
			// Merging with itself must not panic, whatever it returns.
			_, _ = Merge(cs, cs)
			return cs.Bytes(), nil
		})
	})
}

func FuzzDecodeState(f *testing.F) {
	s := State{{Address{1}, "a::A"}: {1}, {Address{1}, "a::B"}: {}}
	e := NewEncoder(0)
	s.Encode(e)
	f.Add(e.Out())
	f.Fuzz(func(t *testing.T, in []byte) {
		roundTrip(t, in, func(in []byte) ([]byte, error) {
			d := NewDecoder(in)
			s := DecodeState(d)
			if err := d.Finish(); err != nil {
				return nil, err
			}
			e := NewEncoder(len(in))
			s.Encode(e)
			return e.Out(), nil
		})
	})
}

func FuzzDecodeProposals(f *testing.F) {
	k := testKey(f, 4)
	v := &Vote{Channel: ChannelID{1}, Proposal: 1, Option: VoteAbstain}
	v.Sign(k)
	a := &Attestation{Channel: ChannelID{1}, Epoch: 2}
	a.Sign(k)
	f.Add(uint8(0), Marshal(&Settlement{From: 1, To: 2}))
	f.Add(uint8(0), Marshal(&Settlement{From: 1, To: 2, StateHash: Hash{1}}))
	f.Add(uint8(1), Marshal(&Punish{Height: 3, Batch: []byte{1}}))
	f.Add(uint8(2), Marshal(&Election{Epoch: 1}))
	f.Add(uint8(3), Marshal(&Censorship{Tx: *sampleTx(k)}))
	f.Add(uint8(4), Marshal(v))
	f.Add(uint8(5), Marshal(a))
	f.Fuzz(func(t *testing.T, kind uint8, in []byte) {
		var v interface {
			Encodable
			Decodable
		}
		switch kind % 6 {
		case 0:
			v = new(Settlement)
		case 1:
			v = new(Punish)
		case 2:
			v = new(Election)
		case 3:
			v = new(Censorship)
		case 4:
			v = new(Vote)
		default:
			v = new(Attestation)
		}
		roundTrip(t, in, func(in []byte) ([]byte, error) {
			if err := Unmarshal(in, v); err != nil {
				return nil, err
			}
			return Marshal(v), nil
		})
	})
}
