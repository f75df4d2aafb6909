package clientapi

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/protocol"
)

func testOutcomes(from uint64, n int) []protocol.Outcome {
	outs := make([]protocol.Outcome, n)
	var d protocol.Hash
	for i := range outs {
		o := &outs[i]
		o.Height = from + uint64(i)
		o.Kind = protocol.EntryCall
		o.Hash[0], o.Hash[1] = byte(o.Height), 0xaa
		o.Output = []byte{byte(i), 1, 2}
		o.Events = []protocol.Event{{Type: "chat::Sent", Data: []byte("hello")}}
		if i%3 == 1 {
			o.Result.Status = protocol.StatusAbort
			o.Result.AbortCode = 102
			o.Message = "not a member"
		}
		o.Result.GasUsed = 1000 + uint64(i)
		o.Result.Output = protocol.OutputHash(o.Output)
		o.Result.ChangeSet = o.ChangeSet.Hash()
		o.Result.Events = protocol.EventsHash(o.Events)
		o.Digest = protocol.NextDigest(d, o.Hash, &o.Result)
		d = o.Digest
	}
	return outs
}

// TestOutcomeCacheWire checks that a message built from shared encodings
// is, on the wire, the message the generated code would marshal, and that
// it decodes back to the same outcomes.
func TestOutcomeCacheWire(t *testing.T) {
	outs := testOutcomes(41, 5)
	var c outcomeCache
	for _, tc := range []struct {
		name string
		outs []protocol.Outcome
	}{
		{"one", outs[:1]},
		{"several", outs},
		{"again from the cache", outs[1:4]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := c.updates(7, tc.outs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			u := &clientpb.Updates{}
			for i := range tc.outs {
				u.Outcomes = append(u.Outcomes, OutcomeToPB(&tc.outs[i]))
			}
			want, err := proto.Marshal(&clientpb.ServerMessage{Id: 7, Body: &clientpb.ServerMessage_Updates{Updates: u}})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("wire form differs:\n got %x\nwant %x", got, want)
			}
			var back clientpb.ServerMessage
			if err := proto.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			if back.GetId() != 7 || len(back.GetUpdates().GetOutcomes()) != len(tc.outs) {
				t.Fatalf("decoded %v", &back)
			}
			for i, p := range back.GetUpdates().GetOutcomes() {
				o, err := OutcomeFromPB(p)
				if err != nil {
					t.Fatal(err)
				}
				if o.Height != tc.outs[i].Height || o.Digest != tc.outs[i].Digest || o.Result != tc.outs[i].Result || o.Message != tc.outs[i].Message {
					t.Fatalf("outcome %d decoded as %+v, sent %+v", i, o, tc.outs[i])
				}
			}
		})
	}
}

// TestOutcomeCacheShares checks that subscribers of a channel share one
// encoding per outcome, and that an outcome that differs from the cached
// one at its height (another history, or another message) is encoded
// afresh, never served from the cache.
func TestOutcomeCacheShares(t *testing.T) {
	outs := testOutcomes(1, 3)
	var c outcomeCache
	a, err := c.field(&outs[1])
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.field(&outs[1])
	if err != nil {
		t.Fatal(err)
	}
	if &a[0] != &b[0] {
		t.Fatal("second subscriber encoded the outcome again")
	}
	for _, tc := range []struct {
		name   string
		change func(o *protocol.Outcome)
	}{
		{"digest", func(o *protocol.Outcome) { o.Digest[0] ^= 1 }},
		{"hash", func(o *protocol.Outcome) { o.Hash[0] ^= 1 }},
		{"message", func(o *protocol.Outcome) { o.Message = "another message" }},
		{"height a ring apart", func(o *protocol.Outcome) { o.Height += encodedOutcomes }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := outs[1]
			tc.change(&o)
			f, err := c.field(&o)
			if err != nil {
				t.Fatal(err)
			}
			want, err := proto.Marshal(OutcomeToPB(&o))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(f, want) {
				t.Fatalf("served a stale encoding for a changed %s", tc.name)
			}
		})
	}
}

// TestOutcomeCachesRelease checks that a channel's cache lives while it has
// subscribers and no longer.
func TestOutcomeCachesRelease(t *testing.T) {
	var cs outcomeCaches
	ch := protocol.ChannelID{9}
	a, b := cs.acquire(ch), cs.acquire(ch)
	if a != b {
		t.Fatal("two caches for one channel")
	}
	cs.release(ch)
	if cs.acquire(ch) != a {
		t.Fatal("cache dropped while a subscriber holds it")
	}
	cs.release(ch)
	cs.release(ch)
	if len(cs.m) != 0 {
		t.Fatalf("%d caches left without subscribers", len(cs.m))
	}
}
