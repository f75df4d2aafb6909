package console

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
)

// publishEvery is how often a channel view publishes what changed: a
// MoveCraft tick is 200 ms by default, so players move on the page tick
// by tick, while a burst of calls makes one update, not hundreds.
const publishEvery = 100 * time.Millisecond

// ChannelSnapshot is the data of a channel view's "snapshot" message and
// of /console/api/channels/{id}: the whole view at a height.
type ChannelSnapshot struct {
	Channel  protocol.ChannelID `json:"channel"`
	Contract string             `json:"contract"`
	Height   uint64             `json:"height"`
	Digest   string             `json:"digest"`
	Members  []protocol.Address `json:"members"`
	View     any                `json:"view"`
}

// ChannelUpdate is the data of an "update" message: what changed up to
// Height (a MoveCraft WorldUpdate; the whole StateView for the others).
type ChannelUpdate struct {
	Height uint64 `json:"height"`
	Digest string `json:"digest"`
	View   any    `json:"view"`
}

// channelView follows one channel's verified outcomes and keeps its model
// and the updates it published. run owns the subscription; mu guards
// what the handlers read.
type channelView struct {
	id     protocol.ChannelID
	hist   *history
	logger hclog.Logger
	done   chan struct{}
	// node gives the channel's ABI; abi is it, read once by run before
	// it subscribes (a channel's ABI never changes), nil when there is
	// none.
	node Node
	abi  *contracts.Contract
	// idle is how long the view follows the channel with nobody
	// watching; users counts open streams, usedAt is the last request
	// (Unix ns).
	idle   time.Duration
	users  atomic.Int64
	usedAt atomic.Int64

	mu struct {
		sync.Mutex
		st      protocol.State
		members []protocol.Address
		model   model
		height  uint64
		digest  protocol.Hash
		// base is the height of the snapshot the model started from:
		// updates below it were never published by this view.
		base  uint64
		ready bool
		err   error
	}
	readyCh chan struct{}
}

func newChannelView(id protocol.ChannelID, node Node, updates int, idle time.Duration, logger hclog.Logger) *channelView {
	v := &channelView{id: id, node: node, hist: newHistory(updates), logger: logger, done: make(chan struct{}),
		readyCh: make(chan struct{}), idle: idle}
	v.touch()
	return v
}

// touch records a request for the view.
func (v *channelView) touch() { v.usedAt.Store(time.Now().UnixNano()) }

// unwatched says nobody has watched the view for its idle time.
func (v *channelView) unwatched() bool {
	return v.users.Load() == 0 && time.Since(time.Unix(0, v.usedAt.Load())) > v.idle
}

// run subscribes from height 0 (a snapshot, then every outcome) and
// applies what comes until ctx ends or the subscription fails for good.
func (v *channelView) run(ctx context.Context, cl *client.Client) {
	defer close(v.done)
	defer v.hist.close()
	v.abi = channelABI(ctx, v.node, v.id, v.logger)
	sub, err := cl.Subscribe(ctx, v.id, 0)
	if err != nil {
		v.fail(err)
		return
	}
	// The reader hands the updates over; it stops with run, whichever
	// way run ends, and run waits for it.
	rctx, cancel := context.WithCancel(ctx)
	updates := make(chan client.Update, 1024)
	errc := make(chan error, 1)
	readerDone := make(chan struct{})
	defer func() {
		cancel()
		sub.Close()
		<-readerDone
	}()
	go func() {
		defer close(readerDone)
		defer close(updates)
		for {
			u, err := sub.Next(rctx)
			if err != nil {
				errc <- err
				return
			}
			select {
			case updates <- u:
			case <-rctx.Done():
				errc <- rctx.Err()
				return
			}
		}
	}()
	t := time.NewTicker(publishEvery)
	defer t.Stop()
	for {
		select {
		case u, ok := <-updates:
			if !ok {
				v.fail(<-errc)
				return
			}
			if err := v.take(u); err != nil {
				v.fail(err)
				return
			}
		case <-t.C:
			if v.unwatched() {
				// Nobody looks: stop following; the next request
				// starts again from a snapshot.
				v.fail(errIdle)
				return
			}
			v.publish()
		}
	}
}

// abiTimeout bounds reading a channel's ABI: a chain that does not answer
// delays the view by this much, then it decodes without.
const abiTimeout = 5 * time.Second

// channelABI reads the channel's ABI through node and parses it: nil when
// the channel has none, and when the chain cannot say or holds one that
// does not parse (logged), so the view still shows the channel, decoded
// with the demo contracts' ABIs.
func channelABI(ctx context.Context, node Node, id protocol.ChannelID, logger hclog.Logger) *contracts.Contract {
	ctx, cancel := context.WithTimeout(ctx, abiTimeout)
	defer cancel()
	raw, err := node.ABI(ctx, id)
	if err != nil {
		logger.Warn("channel ABI not read; decoding with the demo contracts' ABIs", "channel", id, "error", err)
		return nil
	}
	if raw == nil {
		return nil
	}
	a, err := contracts.ParseABI(raw)
	if err != nil {
		logger.Warn("channel ABI on chain does not parse; decoding with the demo contracts' ABIs", "channel", id, "error", err)
		return nil
	}
	return &contracts.Contract{Name: a.Name, ABI: a}
}

// errIdle ends a view nobody watches.
var errIdle = errors.New("console: channel view idle")

func (v *channelView) fail(err error) {
	if errors.Is(err, context.Canceled) {
		err = ErrClosed
	}
	if errors.Is(err, errIdle) || errors.Is(err, ErrClosed) {
		v.logger.Debug("channel view stopped", "channel", v.id, "reason", err)
	} else {
		v.logger.Warn("channel view stopped", "channel", v.id, "error", err)
	}
	v.mu.Lock()
	v.mu.err = err
	v.mu.Unlock()
	v.markReady()
}

func (v *channelView) markReady() {
	select {
	case <-v.readyCh:
	default:
		close(v.readyCh)
	}
}

// take applies one update of the subscription.
func (v *channelView) take(u client.Update) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s := u.Snapshot; s != nil {
		v.mu.st = s.State.Clone()
		if v.mu.st == nil {
			v.mu.st = protocol.State{}
		}
		v.mu.members = append([]protocol.Address(nil), s.Members...)
		v.mu.model = newModel(v.mu.st, v.abi)
		v.mu.model.load(v.mu.st)
		v.mu.height, v.mu.digest, v.mu.base = s.Height, s.Digest, s.Height
		v.mu.ready = true
		v.markReady()
		return nil
	}
	o := u.Outcome
	if o == nil || !v.mu.ready {
		return errors.New("console: a subscription began without a snapshot")
	}
	if err := v.mu.st.Apply(o.ChangeSet); err != nil {
		return err
	}
	v.mu.model.apply(v.mu.st, o)
	v.mu.height, v.mu.digest = o.Height, o.Digest
	return nil
}

// publish appends what changed since the last publish, with the height
// as its id.
func (v *channelView) publish() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.mu.ready || v.mu.height <= v.hist.last() {
		return
	}
	d := v.mu.model.delta()
	if d == nil {
		return
	}
	b, err := json.Marshal(ChannelUpdate{Height: v.mu.height, Digest: v.mu.digest.String(), View: d})
	if err != nil {
		return
	}
	v.hist.append(v.mu.height, "update", b)
}

// snapshot returns the whole view and its height.
func (v *channelView) snapshot() (ChannelSnapshot, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.mu.err != nil {
		return ChannelSnapshot{}, v.mu.err
	}
	if !v.mu.ready {
		return ChannelSnapshot{}, ErrNotReady
	}
	ms := v.mu.members
	if ms == nil {
		ms = []protocol.Address{}
	}
	return ChannelSnapshot{Channel: v.id, Contract: v.mu.model.contract(), Height: v.mu.height, Digest: v.mu.digest.String(),
		Members: ms, View: v.mu.model.view()}, nil
}

// resumable reports whether a client that last saw height h can be given
// the updates after it: h is one this view may have published, and the
// update after it is still retained.
func (v *channelView) resumable(h uint64) bool {
	v.mu.Lock()
	base, height, ready := v.mu.base, v.mu.height, v.mu.ready
	v.mu.Unlock()
	if !ready || h < base || h > height {
		return false
	}
	_, covered, _, _ := v.hist.after(h)
	return covered
}

// column returns a MoveCraft cell's voxels.
func (v *channelView) column(x, y int) (Column, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.mu.err != nil {
		return Column{}, v.mu.err
	}
	m, ok := v.mu.model.(*mcModel)
	if !v.mu.ready || !ok {
		return Column{}, ErrNotWorld
	}
	return Column{X: x, Y: y, Height: v.mu.height, Blocks: m.columnAt(x, y)}, nil
}
