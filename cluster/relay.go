package cluster

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/scraft/scraft/cluster/peerpb"
	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/backoff"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/protocol/rpcerr"
)

// The relay (docs/DESIGN.md §10): a delegator's node is in no Raft
// configuration; it receives the channel's committed log commands (the
// genesis, then the leader-signed batches) from a candidate over the
// member-only Relay stream, and feeds them to its applier as Raft's FSM
// feeds a member's, so it re-executes and checks every batch (evidence as
// usual).
//
// A leader's signature on a batch proves that the leader signed it, not
// that it committed: a deposed leader's last batches may never commit. So
// every relayed command carries a commit proof: the leader of an epoch
// signs (channel, its epoch, the command's last height, the command's
// digest), and it signs only commands it has applied, which Raft applied
// only once committed. A candidate gets the proofs of what it applied
// from the leader over the same stream (proofs only, a few hundred bytes a
// batch) and relays each command with its proof; it cannot forge one,
// because the delegator checks the signer against the chain's leader of
// the proof's epoch (Chain.EpochLeader, a fact of history). A command
// without a valid proof is refused and the delegator takes another
// candidate: it applies nothing uncommitted, so it has nothing to roll
// back.

// domainCommit and domainCommand are the signing and hashing domains of
// commit proofs.
const (
	domainCommit  = "scraft/commit/v1"
	domainCommand = "scraft/command/v1"
)

// commitProof is a leader's signed statement that a log command of the
// channel committed.
type commitProof struct {
	Channel protocol.ChannelID
	// Epoch is the epoch the signer led when it signed: the chain's
	// leader of Epoch must be the signer.
	Epoch uint64
	// LastHeight is the command's last height (0: the genesis).
	LastHeight uint64
	// Command is commandHash of the log command.
	Command   protocol.Hash
	PublicKey ed25519.PublicKey
	Signature []byte
}

// commitProofSize is the length of a commit proof's encoding.
const commitProofSize = len(protocol.ChannelID{}) + 8 + 8 + len(protocol.Hash{}) + ed25519.PublicKeySize + ed25519.SignatureSize

// commandHash is the digest a commit proof signs: of the whole log
// command, its kind byte included.
func commandHash(cmd []byte) protocol.Hash { return protocol.HashOf(domainCommand, cmd) }

func (p *commitProof) body() []byte {
	e := protocol.NewEncoder(96)
	e.Fixed(p.Channel[:])
	e.U64(p.Epoch)
	e.U64(p.LastHeight)
	e.Fixed(p.Command[:])
	return e.Out()
}

// signCommit makes k's commit proof of a command.
func signCommit(k *protocol.Key, id protocol.ChannelID, epoch, last uint64, h protocol.Hash) *commitProof {
	p := &commitProof{Channel: id, Epoch: epoch, LastHeight: last, Command: h, PublicKey: k.Public()}
	p.Signature = k.Sign(domainCommit, p.body())
	return p
}

func (p *commitProof) bytes() []byte {
	e := protocol.NewEncoder(commitProofSize)
	e.Fixed(p.body())
	e.Fixed(p.PublicKey)
	e.Fixed(p.Signature)
	return e.Out()
}

// decodeCommitProof decodes a proof and checks its signature.
func decodeCommitProof(b []byte) (*commitProof, error) {
	if len(b) != commitProofSize {
		return nil, fmt.Errorf("commit proof of %d bytes, want %d", len(b), commitProofSize)
	}
	d := protocol.NewDecoder(b)
	p := &commitProof{}
	d.FixedInto(p.Channel[:])
	p.Epoch = d.U64()
	p.LastHeight = d.U64()
	d.FixedInto(p.Command[:])
	p.PublicKey = d.Fixed(ed25519.PublicKeySize)
	p.Signature = d.Fixed(ed25519.SignatureSize)
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("commit proof: %w", err)
	}
	if !protocol.Verify(p.PublicKey, domainCommit, p.body(), p.Signature) {
		return nil, fmt.Errorf("commit proof: %w", protocol.ErrBadSignature)
	}
	return p, nil
}

// signer is the address of the proof's key.
func (p *commitProof) signer() protocol.Address { return protocol.AddressOf(p.PublicKey) }

// relayEntry is one applied log command as the relay keeps it.
type relayEntry struct {
	first, last uint64 // heights; both 0 for the genesis
	cmd         []byte // the log command: kind byte, then body
	hash        protocol.Hash
	proof       []byte // the leader's commit proof, nil until known
}

// relayLogEntries is how many of the most recent commands a node keeps for
// the delegators (and, as a candidate, to match the leader's proofs); a
// delegator further behind than that catches up from a snapshot. A
// variable so that tests can make it small before they start nodes.
var relayLogEntries = 4096

const (
	// maxRelayBytes bounds what the relay log's commands weigh.
	maxRelayBytes   = 64 << 20
	maxPendingProof = 1024
	// maxRelayStreams bounds the Relay streams one channel serves at a
	// time: a candidate's delegators (at most a fifth of the members) and
	// the other candidates' proof streams, with room to spare; no member
	// can hold more of the node's goroutines than that.
	maxRelayStreams = 256
)

// relayLog holds the recent applied commands of a channel, with their
// commit proofs once known, for the Relay stream. The applier adds to it
// (record, under the machine lock); Relay streams read it.
type relayLog struct {
	mu struct {
		sync.Mutex
		gen     *relayEntry
		entries []*relayEntry // ascending by height
		size    int
		// pending holds proofs that came before their command, by last
		// height.
		pending map[uint64]*commitProof
		changed chan struct{}
		// genGone says the genesis was dropped for want of a proof (the
		// leader no longer holds it): it is not kept again.
		genGone bool
	}
	// source is the address of the node this delegator is relayed from
	// now ("" when none).
	source atomic.Value
	// streams counts the Relay streams served.
	streams atomic.Int32
	// limit is relayLogEntries when the log was made.
	limit int
}

func (r *relayLog) init() {
	r.limit = relayLogEntries
	r.mu.pending = map[uint64]*commitProof{}
	r.mu.changed = make(chan struct{})
	r.source.Store("")
}

func (r *relayLog) notifyLocked() {
	close(r.mu.changed)
	r.mu.changed = make(chan struct{})
}

// add appends an applied command; commands at or below the newest are
// ignored (a replay after a restore).
func (r *relayLog) add(e *relayEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.last == 0 {
		if r.mu.gen == nil && !r.mu.genGone {
			r.mu.gen = e
			r.takePendingLocked(e)
			r.notifyLocked()
		}
		return
	}
	if n := len(r.mu.entries); n > 0 && r.mu.entries[n-1].last >= e.first {
		return
	}
	r.mu.entries = append(r.mu.entries, e)
	r.mu.size += len(e.cmd)
	for len(r.mu.entries) > r.limit || (r.mu.size > maxRelayBytes && len(r.mu.entries) > 1) {
		r.mu.size -= len(r.mu.entries[0].cmd)
		r.mu.entries[0] = nil
		r.mu.entries = r.mu.entries[1:]
	}
	r.takePendingLocked(e)
	r.notifyLocked()
}

func (r *relayLog) takePendingLocked(e *relayEntry) {
	if p, ok := r.mu.pending[e.last]; ok {
		delete(r.mu.pending, e.last)
		if e.proof == nil && p.Command == e.hash {
			e.proof = p.bytes()
		}
	}
}

// findLocked returns the entry whose last height is last.
func (r *relayLog) findLocked(last uint64) *relayEntry {
	if last == 0 {
		return r.mu.gen
	}
	i, ok := slices.BinarySearchFunc(r.mu.entries, last, func(e *relayEntry, h uint64) int {
		switch {
		case e.last < h:
			return -1
		case e.last > h:
			return 1
		}
		return 0
	})
	if !ok {
		return nil
	}
	return r.mu.entries[i]
}

// attach records the proof p of the command at its last height, when it
// is the command held there; a proof of a command not applied yet is kept
// until it is, at most maxPendingProof of them: it reports false when p
// was of a command still to come and could not be kept.
func (r *relayLog) attach(p *commitProof) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.findLocked(p.LastHeight); e != nil {
		if e.proof == nil && e.hash == p.Command {
			e.proof = p.bytes()
			r.notifyLocked()
		}
		return true
	}
	newest := uint64(0)
	if n := len(r.mu.entries); n > 0 {
		newest = r.mu.entries[n-1].last
	}
	if p.LastHeight < newest || (p.LastHeight == 0 && r.mu.gen != nil) {
		return true // evicted, or not the command held here: nothing to keep
	}
	if len(r.mu.pending) >= maxPendingProof {
		return false
	}
	r.mu.pending[p.LastHeight] = p
	return true
}

// after returns the entries from height pos on (the genesis first when
// pos is 0) as far as they are contiguous, whether pos is held at all, and
// a channel closed on the next change.
func (r *relayLog) after(pos uint64) (out []relayEntry, held bool, changed <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed = r.mu.changed
	if pos == 0 {
		if r.mu.gen == nil {
			return nil, !r.mu.genGone, changed // not applied yet, or gone
		}
		out = append(out, *r.mu.gen)
		pos = 1
	}
	i, _ := slices.BinarySearchFunc(r.mu.entries, pos, func(e *relayEntry, h uint64) int {
		if e.last < h {
			return -1
		}
		return 1
	})
	if i == len(r.mu.entries) {
		return out, len(r.mu.entries) == 0 || r.mu.entries[len(r.mu.entries)-1].last < pos, changed
	}
	if r.mu.entries[i].first > pos {
		return out, false, changed
	}
	for _, e := range r.mu.entries[i:] {
		if e.first != pos {
			break
		}
		out = append(out, *e)
		pos = e.last + 1
	}
	return out, true, changed
}

// setProof stores a proof this node signed.
func (r *relayLog) setProof(last uint64, proof []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.findLocked(last); e != nil && e.proof == nil {
		e.proof = proof
	}
}

// dropUnproven drops the genesis when it has no proof, else the commands
// up to the first without one: the leader no longer holds it, so no proof
// will come, and a delegator that needs it catches up from a snapshot
// instead of waiting. Each call drops at least one unproven command.
func (r *relayLog) dropUnproven() {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.notifyLocked()
	if r.mu.gen != nil && r.mu.gen.proof == nil {
		r.mu.gen, r.mu.genGone = nil, true
		return
	}
	i := slices.IndexFunc(r.mu.entries, func(e *relayEntry) bool { return e.proof == nil })
	for ; i >= 0; i-- {
		r.mu.size -= len(r.mu.entries[0].cmd)
		r.mu.entries[0] = nil
		r.mu.entries = r.mu.entries[1:]
	}
}

// dropUnprovenBefore drops the commands below height h that have no proof
// yet, and those before them, and the genesis without a proof: the leader,
// whose proofs begin at h, no longer holds them.
func (r *relayLog) dropUnprovenBefore(h uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.gen != nil && r.mu.gen.proof == nil {
		r.mu.gen, r.mu.genGone = nil, true
	}
	j := -1
	for i, e := range r.mu.entries {
		if e.last >= h {
			break
		}
		if e.proof == nil {
			j = i
		}
	}
	for ; j >= 0; j-- {
		r.mu.size -= len(r.mu.entries[0].cmd)
		r.mu.entries[0] = nil
		r.mu.entries = r.mu.entries[1:]
	}
	r.notifyLocked()
}

// oldest returns the first height of the oldest command held, if any.
func (r *relayLog) oldest() (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.mu.entries) == 0 {
		return 0, false
	}
	return r.mu.entries[0].first, true
}

// missingProof returns the lowest height whose command has no proof yet,
// or the height after the newest command when all have one.
func (r *relayLog) missingProof() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.mu.genGone && (r.mu.gen == nil || r.mu.gen.proof == nil) {
		return 0
	}
	for _, e := range r.mu.entries {
		if e.proof == nil {
			return e.first
		}
	}
	if n := len(r.mu.entries); n > 0 {
		return r.mu.entries[n-1].last + 1
	}
	return 1
}

// keepForRelay keeps an applied batch for the relay, in a channel with
// candidates (or before the first read of the layout, when it may be
// one). cmd is the batch's log command as Raft committed it, kept as it
// is rather than encoded again (nil: b is encoded). It runs under the
// machine lock (onApplied).
func (c *Channel) keepForRelay(b *protocol.Batch, cmd []byte) {
	if l := c.layout(); l != nil && !l.delegated() {
		return
	}
	if cmd == nil {
		cmd = encodeLog(logBatch, b.Bytes())
	}
	c.relay.add(&relayEntry{first: b.FirstHeight, last: b.LastHeight(), cmd: cmd, hash: commandHash(cmd)})
}

// recordGenesis keeps the installed genesis for the relay.
func (c *Channel) recordGenesis() {
	var g *genesis
	c.fsm.machine(func(m *fsm.Machine) {
		if m != nil {
			g = c.fsm.gen
		}
	})
	if g == nil {
		return
	}
	cmd := encodeLog(logGenesis, g.bytes())
	c.relay.add(&relayEntry{cmd: cmd, hash: commandHash(cmd)})
}

// serveRelay streams the commands from height from on, each once its
// commit proof is known: the leader signs its own (it applied them, so
// they committed); another node sends those it has from the leader.
// It ends with ctx, or FAILED_PRECONDITION when from is no longer held.
func (c *Channel) serveRelay(ctx context.Context, from uint64, proofsOnly bool, send func(*peerpb.RelayedCommand) error) error {
	pos := from
	for {
		if pos == 0 {
			c.recordGenesis()
		}
		es, held, changed := c.relay.after(pos)
		if o, ok := c.relay.oldest(); !held && proofsOnly && ok && o > pos {
			// A candidate asking for proofs gets those held here, from
			// the oldest on, and drops what they do not cover.
			pos = o
			continue
		}
		if !held {
			return status.Errorf(codes.FailedPrecondition, "cluster: height %d is no longer held for the relay here", pos)
		}
		for _, e := range es {
			proof := e.proof
			if proof == nil {
				if run := c.leader.Load(); run != nil {
					proof = signCommit(c.cfg.Key, c.id, run.epoch, e.last, e.hash).bytes()
					c.relay.setProof(e.last, proof)
				}
			}
			if proof == nil {
				break
			}
			msg := &peerpb.RelayedCommand{Proof: proof}
			if !proofsOnly {
				msg.Command = e.cmd
			}
			if err := send(msg); err != nil {
				return err
			}
			pos = e.last + 1
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-changed:
		case <-time.After(c.cfg.ReconcileInterval):
			// This node may have become the leader, which signs.
		}
	}
}

// Relay serves the Relay stream to a member of the channel.
func (p *peerService) Relay(req *peerpb.RelayRequest, ss peerpb.Peer_RelayServer) error {
	ctx := ss.Context()
	caller, _, err := verifyCaller(req.Caller, "Relay", relayAuth(req.Channel, req.FromHeight, req.ProofsOnly)...)
	if err != nil {
		return rpcerr.Err(err)
	}
	if err := p.admit(ctx, req.Channel, caller); err != nil {
		return err
	}
	c, err := p.channelFor(req.Channel, caller)
	if err != nil {
		return err
	}
	if n := c.relay.streams.Add(1); n > maxRelayStreams {
		c.relay.streams.Add(-1)
		return status.Errorf(codes.ResourceExhausted, "cluster: %d relay streams of channel %s open here already", maxRelayStreams, c.id)
	}
	defer c.relay.streams.Add(-1)
	return c.serveRelay(ctx, req.FromHeight, req.ProofsOnly, ss.Send)
}

// relayAuth is what the caller of Relay signs.
func relayAuth(channel []byte, from uint64, proofsOnly bool) [][]byte {
	var po byte
	if proofsOnly {
		po = 1
	}
	return [][]byte{channel, u64bytes(from), {po}}
}

// relay opens a Relay stream from the node at addr.
func (p *peerClient) relay(ctx context.Context, addr string, id protocol.ChannelID, from uint64, proofsOnly bool, pr *peer.Peer) (peerpb.Peer_RelayClient, error) {
	cl, err := p.client(addr)
	if err != nil {
		return nil, err
	}
	st, err := cl.Relay(ctx, &peerpb.RelayRequest{
		Channel: id[:], FromHeight: from, ProofsOnly: proofsOnly,
		Caller: signCaller(p.key, "Relay", relayAuth(id[:], from, proofsOnly)...),
	}, grpc.Peer(pr))
	if err != nil {
		return nil, rpcerr.From(err)
	}
	return st, nil
}

// errBadRelay marks a relayed command refused for its proof: the source
// is not to be trusted again soon.
var errBadRelay = errors.New("cluster: relayed command without a valid commit proof")

// relayPosition returns the height a delegator asks the relay for next:
// 0 for the genesis, else the one after its applied height.
func (c *Channel) relayPosition() uint64 {
	var pos uint64
	c.fsm.machine(func(m *fsm.Machine) {
		if c.fsm.gen != nil && m != nil {
			pos = m.Height() + 1
		}
	})
	return pos
}

// checkProof checks that proof is the commit proof of cmd by the chain's
// leader of the proof's epoch, and returns it. It waits at most
// PeerTimeout for the chain to name that leader: a proof of an epoch the
// chain has not reached is none.
func (c *Channel) checkProof(ctx context.Context, cmd, raw []byte) (*commitProof, error) {
	p, err := decodeCommitProof(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRelay, err)
	}
	if p.Channel != c.id {
		return nil, fmt.Errorf("%w: proof of channel %s", errBadRelay, p.Channel)
	}
	if cmd != nil {
		if p.Command != commandHash(cmd) {
			return nil, fmt.Errorf("%w: the proof is of another command", errBadRelay)
		}
		last, epoch, err := commandHeights(cmd)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadRelay, err)
		}
		if p.LastHeight != last {
			return nil, fmt.Errorf("%w: proof of height %d for a command ending at %d", errBadRelay, p.LastHeight, last)
		}
		if p.Epoch < epoch {
			return nil, fmt.Errorf("%w: proof of epoch %d for a batch of epoch %d", errBadRelay, p.Epoch, epoch)
		}
	}
	lctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
	defer cancel()
	leader, unrecorded, err := c.awaitLeader(lctx, p.Epoch)
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, fmt.Errorf("%w: the chain names no leader of epoch %d", errBadRelay, p.Epoch)
	case unrecorded:
		return nil, fmt.Errorf("%w: the chain keeps no leader of epoch %d", errBadRelay, p.Epoch)
	case leader != p.signer():
		return nil, fmt.Errorf("%w: signed by %s, the leader of epoch %d is %s", errBadRelay, p.signer(), p.Epoch, leader)
	}
	return p, nil
}

// commandHeights returns a log command's last height (0 for the genesis)
// and, for a batch, its epoch.
func commandHeights(cmd []byte) (last, epoch uint64, err error) {
	if len(cmd) == 0 {
		return 0, 0, errors.New("empty command")
	}
	switch cmd[0] {
	case logGenesis:
		return 0, 0, nil
	case logBatch:
		b, err := protocol.DecodeBatch(cmd[1:])
		if err != nil {
			return 0, 0, err
		}
		return b.LastHeight(), b.Epoch, nil
	}
	return 0, 0, fmt.Errorf("unknown log command %d", cmd[0])
}

// acceptRelayed checks a relayed command's commit proof and applies it.
// A command refused for its proof (errBadRelay) is not applied.
//
// ctx is the stream's and bounds only the check: the apply runs in the
// channel's context, as Raft's applies do. The applier takes a context
// that ends while a command waits for the chain (the genesis's code, an
// epoch's leader, a join's decision) for shutdown and applies nothing
// more; a stream ends for much less (a better path, a source that does
// not answer, a new layout), and a delegator whose stream ended then
// would never apply again.
func (c *Channel) acceptRelayed(ctx context.Context, msg *peerpb.RelayedCommand) error {
	if len(msg.Command) == 0 {
		return fmt.Errorf("%w: no command", errBadRelay)
	}
	p, err := c.checkProof(ctx, msg.Command, msg.Proof)
	if err != nil {
		return err
	}
	res := c.fsm.applier.Apply(c.ctx, []committedBatch{{data: msg.Command}})
	if r := res[0]; r != nil && r.err != nil && !errors.Is(r.err, ErrRefused) {
		return r.err
	}
	_ = c.relay.attach(p)
	return nil
}

// runRelay is a channel's relay loop. On a delegator it receives the
// committed commands from a candidate (relayFrom); on a candidate that
// does not lead it fetches the leader's commit proofs of what it applied
// (fetchProofs), so that it can relay them. Elsewhere it waits.
func (c *Channel) runRelay(ctx context.Context) {
	c.relay.source.Store("")
	failed := map[protocol.Address]time.Time{}
	bo := backoff.New(backoff.Policy{Initial: 20 * time.Millisecond, Max: time.Second})
	for ctx.Err() == nil {
		l := c.layout()
		var err error
		switch {
		case !l.delegated():
			bo.Reset()
			select {
			case <-ctx.Done():
			case <-time.After(delegationEvery):
			}
			continue
		case l.isCandidate(c.me()):
			c.relay.source.Store("")
			if c.leader.Load() != nil {
				bo.Reset()
				select {
				case <-ctx.Done():
				case <-time.After(c.cfg.ReconcileInterval):
				}
				continue
			}
			err = c.fetchProofs(ctx)
		default:
			err = c.relayFrom(ctx, l, failed)
		}
		if err != nil && ctx.Err() == nil {
			c.logger.Debug("relay", "error", err)
		}
		if !bo.Wait(ctx) {
			return
		}
	}
}

// relaySources returns the candidates a delegator may be relayed from, in
// the order it tries them: the one its best path to the leader goes
// through (via, zero when it has none; path.go), its delegation on
// record, then by its measured latency, then the rest; the leader after
// the other candidates, so that its egress does not grow with the members
// (it relays only when no other candidate answers); those that failed
// within failWait last.
func relaySources(l *layout, self, leader, via protocol.Address, failed map[protocol.Address]time.Time, now time.Time) []protocol.Address {
	var out []protocol.Address
	add := func(a protocol.Address) {
		if !a.IsZero() && l.isCandidate(a) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	add(via)
	add(l.delegatedTo(self))
	for _, a := range l.prefs {
		add(a)
	}
	for _, a := range l.candidates {
		add(a)
	}
	rank := func(a protocol.Address) int {
		switch {
		case now.Sub(failed[a]) < failWait:
			return 2
		case a == leader:
			return 1
		}
		return 0
	}
	slices.SortStableFunc(out, func(a, b protocol.Address) int { return rank(a) - rank(b) })
	return out
}

// failWait is how long a relay source that failed is tried only after the
// others.
const failWait = 5 * time.Second

// relayFrom receives and applies the commands relayed by the first source
// that answers, until the stream ends, the source stops answering, a
// command comes without a valid proof, or this node stops being a
// delegator.
func (c *Channel) relayFrom(ctx context.Context, l *layout, failed map[protocol.Address]time.Time) error {
	leader, _, _ := c.view.current()
	srcs := relaySources(l, c.me(), leader, c.routeVia(), failed, time.Now())
	if len(srcs) == 0 {
		return errors.New("no candidate to relay from")
	}
	src := srcs[0]
	addr := l.nodeAddress(src)
	if addr == "" {
		failed[src] = time.Now()
		return fmt.Errorf("candidate %s has no node address on chain", src)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var pr peer.Peer
	st, err := c.node.peers.relay(ctx, addr, c.id, c.relayPosition(), false, &pr)
	if err != nil {
		failed[src] = time.Now()
		return err
	}
	c.relay.source.Store(addr)
	defer c.relay.source.Store("")
	c.logger.Info("relayed from candidate", "candidate", src, "address", addr, "from", c.relayPosition())
	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan struct{})
	defer close(done)
	var heard atomic.Int64 // when the stream last brought a command, Unix ns
	heard.Store(time.Now().UnixNano())
	var rerouted atomic.Bool // the stream ended for a better path, not a fault of src
	ws := sourceWatch{src: src, addr: addr, via: c.routeVia(), heard: &heard, rerouted: &rerouted}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.watchSource(ctx, cancel, done, ws)
	}()
	checked := false
	for {
		msg, err := st.Recv()
		if status.Code(err) == codes.FailedPrecondition {
			// Further behind than the candidate's relay log reaches.
			return c.catchUp(ctx, src, addr)
		}
		if err != nil && rerouted.Load() {
			return errRerouted
		}
		if err != nil {
			failed[src] = time.Now()
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("relay from %s ended", src)
			}
			return fmt.Errorf("relay from %s: %w", src, rpcerr.From(err))
		}
		if !checked {
			if err := c.node.peers.checkServer(ctx, addr, c.id, &pr); err != nil {
				failed[src] = time.Now()
				return err
			}
			checked = true
		}
		heard.Store(time.Now().UnixNano())
		if err := c.acceptRelayed(ctx, msg); err != nil {
			if rerouted.Load() && !errors.Is(err, errBadRelay) {
				return errRerouted
			}
			if errors.Is(err, errBadRelay) {
				c.logger.Warn("candidate relayed a command without a valid commit proof: refused, taking another candidate", "candidate", src, "error", err)
			}
			failed[src] = time.Now()
			return err
		}
	}
}

// errRerouted ends a relay stream that a better path to the leader
// replaces; its source did nothing wrong.
var errRerouted = errors.New("relay: a better path to the leader, through another candidate")

// sourceWatch is what watchSource watches: a relay stream's source and
// the stream's traffic.
type sourceWatch struct {
	src  protocol.Address
	addr string
	// via is the delegator's route when the stream opened: the stream
	// moves only when the route changes from it (a route through a
	// candidate that failed a moment ago does not move it back and forth).
	via protocol.Address
	// heard is when the stream last brought a command, Unix ns.
	heard *atomic.Int64
	// rerouted is set when the watch ends the stream for a better path.
	rerouted *atomic.Bool
}

// watchSource cancels a relay stream when its source, quiet for a
// PeerTimeout, stops answering Status within PeerTimeout, or this node
// stops being a delegator; a stream alone would wait for the source's
// next command for ever. It also cancels it, setting rerouted, when the
// delegator's best path to the leader moves to another candidate
// (path.go): the next stream opens there, from the height reached.
func (c *Channel) watchSource(ctx context.Context, cancel context.CancelFunc, done <-chan struct{}, w sourceWatch) {
	src, addr, heard := w.src, w.addr, w.heard
	t := time.NewTicker(c.cfg.PeerTimeout)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if l := c.layout(); !l.delegated() || l.isCandidate(c.me()) || !l.isCandidate(src) {
			cancel()
			return
		}
		if via := c.routeVia(); !via.IsZero() && via != src && via != w.via {
			c.logger.Info("a better path to the leader: relayed from another candidate", "from", src, "to", via)
			w.rerouted.Store(true)
			cancel()
			return
		}
		if time.Since(time.Unix(0, heard.Load())) < c.cfg.PeerTimeout {
			continue // it is talking: no need to ask
		}
		sctx, scancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
		_, err := c.node.peers.status(sctx, addr, c.id)
		scancel()
		if err != nil && ctx.Err() == nil {
			c.logger.Info("relay source does not answer: taking another candidate", "candidate", src, "error", err)
			cancel()
			return
		}
	}
}

// fetchProofs receives the Raft leader's commit proofs of the commands
// from the first this node holds without one, and keeps those signed by
// the chain's leader of their epoch, until the stream ends, the leader
// changes or this node leads.
func (c *Channel) fetchProofs(ctx context.Context) error {
	addr, _ := c.raft.LeaderWithID()
	if addr == "" || string(addr) == c.cfg.Address {
		return errors.New("no raft leader to fetch commit proofs from")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.recordGenesis()
	from := c.relay.missingProof()
	var pr peer.Peer
	st, err := c.node.peers.relay(ctx, string(addr), c.id, from, true, &pr)
	if err != nil {
		return err
	}
	// A new leader signs the proofs from now on: ask it.
	_, _, changed := c.view.current()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-changed:
			cancel()
		}
	}()
	first := true
	for {
		msg, err := st.Recv()
		if status.Code(err) == codes.FailedPrecondition {
			// The leader no longer holds the oldest commands here without
			// a proof: they will not be relayed.
			c.relay.dropUnproven()
			return errors.New("the leader holds no proof of the oldest commands here")
		}
		if err != nil {
			return rpcerr.From(err)
		}
		p, err := c.checkProof(ctx, nil, msg.Proof)
		if err != nil {
			return err
		}
		if first {
			first = false
			if p.LastHeight > from {
				// The leader's proofs begin past what was asked for.
				c.relay.dropUnprovenBefore(p.LastHeight)
			}
		}
		if !c.relay.attach(p) {
			// Too far ahead of what this node applied: ask again
			// from its first command without a proof.
			return errors.New("commit proofs too far ahead of the applied commands")
		}
	}
}

// relaysFor reports whether this node passes delegators' txs on to the
// leader: a candidate of a channel with candidates.
func (c *Channel) relaysFor() bool {
	l := c.layout()
	return l.delegated() && l.isCandidate(c.me())
}

// relaySource returns the address of the candidate this delegator is
// relayed from now, "" when none.
func (c *Channel) relaySource() string {
	s, _ := c.relay.source.Load().(string)
	return s
}

// catchUp restores a delegator that is further behind than its candidate's
// relay log from the candidate's snapshot (the Snapshot peer call): the
// state at the settled height, which the restore checks against the
// chain's settled state hash, then the leader-signed batches since, which
// it re-executes. Those batches come without commit proofs: the
// candidate applied them through Raft, but the delegator has only its
// word that they committed until the next settlement covers them.
func (c *Channel) catchUp(ctx context.Context, src protocol.Address, addr string) error {
	from := c.relayPosition()
	c.logger.Info("behind the candidate's relay log: catching up from its snapshot", "candidate", src, "from", from)
	sctx, cancel := context.WithTimeout(ctx, 4*c.cfg.ApplyTimeout)
	defer cancel()
	buf, err := c.node.peers.snapshot(sctx, addr, c.id, from)
	if err != nil {
		return fmt.Errorf("snapshot from %s: %w", src, err)
	}
	if err := c.fsm.Restore(io.NopCloser(bytes.NewReader(buf))); err != nil {
		return fmt.Errorf("snapshot from %s: %w", src, err)
	}
	c.logger.Info("caught up from the candidate's snapshot", "candidate", src, "height", c.relayPosition()-1)
	return nil
}
