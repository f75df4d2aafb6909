package clientapi

import (
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/protocol"
)

// Fan-out of one channel's outcomes to many streams: every subscriber of a
// channel sends the same outcomes, so their wire encoding is made once and
// shared. An Updates message is nothing but its outcomes' encodings one
// after the other (field 1, repeated), and a ServerMessage's body is that
// message as field 8: a stream builds its message by concatenating the
// shared encodings behind its own request id, with no per-subscriber
// conversion or protobuf marshalling of the outcomes.

// encodedOutcomes is the ring size of a channel's outcomeCache. Subscribers
// that keep up ask for the same few heights at about the same time; one
// that fell further behind than this encodes its own copies.
const encodedOutcomes = 256

// fieldUpdatesOutcomes and fieldServerMessageUpdates are the field numbers
// of Updates.outcomes and ServerMessage.updates in client.proto.
const (
	fieldUpdatesOutcomes      protowire.Number = 1
	fieldServerMessageUpdates protowire.Number = 8
)

// outcomeCache holds the wire encodings of a channel's recent outcomes.
// Lookups and stores are lock-free; two subscribers that miss the same
// height at once both encode it, and the second store wins: the two
// encodings are equal.
type outcomeCache struct {
	slots [encodedOutcomes]atomic.Pointer[encodedOutcome]
	refs  int // guarded by outcomeCaches' lock
}

// encodedOutcome is one outcome as an Updates.outcomes field: tag, length,
// encoded Outcome message. It is never changed once stored.
type encodedOutcome struct {
	height  uint64
	digest  protocol.Hash
	hash    protocol.Hash
	message string
	field   []byte
}

// field returns o as an encoded Updates.outcomes field. It fails only when
// o cannot be put on the wire (a string that is not UTF-8).
func (c *outcomeCache) field(o *protocol.Outcome) ([]byte, error) {
	slot := &c.slots[o.Height%encodedOutcomes]
	// The digest chains the result (status, output, change set, events),
	// the hash names the entry; the message is outside both.
	if e := slot.Load(); e != nil && e.height == o.Height && e.digest == o.Digest && e.hash == o.Hash && e.message == o.Message {
		return e.field, nil
	}
	b, err := proto.Marshal(OutcomeToPB(o))
	if err != nil {
		return nil, fmt.Errorf("%w: outcome at height %d: %v", protocol.ErrInternal, o.Height, err)
	}
	f := protowire.AppendTag(make([]byte, 0, len(b)+12), fieldUpdatesOutcomes, protowire.BytesType)
	f = protowire.AppendBytes(f, b)
	slot.Store(&encodedOutcome{height: o.Height, digest: o.Digest, hash: o.Hash, message: o.Message, field: f})
	return f, nil
}

// updates returns the ServerMessage with id that carries outs as one
// Updates. The message holds its body as pre-encoded bytes: marshalling it
// copies them after the id.
func (c *outcomeCache) updates(id uint64, outs []protocol.Outcome) (*clientpb.ServerMessage, error) {
	fields := make([][]byte, len(outs))
	n := 0
	for i := range outs {
		f, err := c.field(&outs[i])
		if err != nil {
			return nil, err
		}
		fields[i] = f
		n += len(f)
	}
	b := make([]byte, 0, n+protowire.SizeTag(fieldServerMessageUpdates)+protowire.SizeVarint(uint64(n)))
	b = protowire.AppendTag(b, fieldServerMessageUpdates, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	for _, f := range fields {
		b = append(b, f...)
	}
	m := &clientpb.ServerMessage{Id: id}
	m.ProtoReflect().SetUnknown(b)
	return m, nil
}

// outcomeCaches are the caches of the channels that have subscribers on
// this node's client API.
type outcomeCaches struct {
	mu sync.Mutex
	m  map[protocol.ChannelID]*outcomeCache
}

// acquire returns the channel's cache; release it when the subscription
// ends.
func (cs *outcomeCaches) acquire(ch protocol.ChannelID) *outcomeCache {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.m[ch]
	if c == nil {
		if cs.m == nil {
			cs.m = make(map[protocol.ChannelID]*outcomeCache)
		}
		c = &outcomeCache{}
		cs.m[ch] = c
	}
	c.refs++
	return c
}

// release drops the cache of a channel with no subscriber left.
func (cs *outcomeCaches) release(ch protocol.ChannelID) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c := cs.m[ch]; c != nil {
		if c.refs--; c.refs <= 0 {
			delete(cs.m, ch)
		}
	}
}
