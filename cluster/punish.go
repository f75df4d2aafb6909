package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/backoff"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// Punishment (DESIGN.md, "Punishment") has three parts, all here.
//
// Filing: when this member's own result for an entry differs from the one
// the leader signed, fsm records evidence (onEvidence); the first such
// offence of each (leader, epoch) becomes a punish proposal, filed by
// runPunishment with backoff until the chain takes it. When the offence
// already has its case (ErrDuplicateCase), this member votes for that case.
//
// Holding: a member that recorded an offence applies no later batch of
// that epoch until the chain judges it (applier.hold): it applied its own
// result for the offending entry, so every later batch of the epoch, which
// the leader chained on its own, would be evidence again. Reads and status
// answer at the last good height meanwhile. When the punishment executes,
// the epoch is over: its later batches are refused, the same on every
// member that saw the offence (they all did: the machine is
// deterministic), and the next epoch's leader goes on from the last good
// height. When the case fails (voted down, or closed without a vote in
// favour from enough members), this member's own execution is the odd
// one out: it resyncs (resync) from the state the chain settles past the
// offence, which the others' votes made, and applies on from there.
//
// Judging: every member watches the channel's punish proposals and votes
// by its own execution of the entry (fsm.Machine.JudgePunish): for when it
// computed the reporter's result, against when it computed the target's,
// abstain when it cannot tell (the height is pruned, or it did not reach
// it within SettleTimeout). Any member executes a case that passed.
//
// Equivocation (two batches a leader signed for one height) is an
// offence too, found and judged without re-execution
// (punish_equivocation.go); it holds no batch.
//
// A channel of two that punishes one member cannot commit anything in
// Raft afterwards: the one left settles its journal to its last good
// height and closes the channel on chain (closeAlone).

// offence is this member's evidence against the leader of an epoch, and
// the chain's judgement of it.
type offence struct {
	leader protocol.Address
	epoch  uint64
	pu     protocol.Punish

	// Owned by runPunishment:
	pid  uint64 // the case on chain, 0 until known
	bo   *backoff.Backoff
	next time.Time // when to file again

	judged chan struct{} // closed once the chain decided
	guilty bool          // the punishment executed (set before judged closes)
	// own marks an offence found in an epoch this member already resynced
	// in after a failed case: its own execution is at fault again. It is
	// not filed nor kept on disk; it holds for good (hold).
	own bool
}

func (o *offence) isJudged() bool {
	select {
	case <-o.judged:
		return true
	default:
		return false
	}
}

// punishment is the channel's offences, shared by the evidence callback
// (on the apply path), the applier's hold and runPunishment.
//
// The offences are kept on disk too (offencesFile): a node restarted from
// a Raft snapshot taken after an offence replays the later batches of its
// epoch, and must hold them as it did before, not apply them.
type punishment struct {
	mu       sync.Mutex
	offences []*offence
	wake     chan struct{}
	path     string // the offences file
	// resynced is the (leader, epoch) of every offence this member
	// resynced past after its case failed, since it started.
	resynced []*offence
	// muted is set while this member re-executes a snapshot to resync:
	// a result it computes otherwise there is its own fault again, not
	// an offence to file.
	muted atomic.Bool
}

// offencesFile holds, in the channel's folder, the punish payload of every
// offence this member recorded, each a length-prefixed canonical encoding.
const offencesFile = "offences"

// init loads the offences kept in dir, if any.
func (p *punishment) init(dir string) error {
	p.wake = make(chan struct{}, 1)
	p.path = filepath.Join(dir, offencesFile)
	b, err := os.ReadFile(p.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	d := protocol.NewDecoder(b)
	for d.Err() == nil && d.Remaining() > 0 {
		var pu protocol.Punish
		if err := protocol.Unmarshal(d.Bytes(2*protocol.MaxBatchBytes+1<<20), &pu); err != nil {
			return fmt.Errorf("%s: %w", p.path, err)
		}
		bt, err := protocol.DecodeBatch(pu.Batch)
		if err != nil {
			return fmt.Errorf("%s: %w", p.path, err)
		}
		p.offences = append(p.offences, newOffence(pu.Target, bt.Epoch, pu))
	}
	if err := d.Finish(); err != nil {
		return fmt.Errorf("%s: %w", p.path, err)
	}
	return nil
}

// fileRetry is how a refused filing is retried: soon for a chain that
// could not be reached, at most every 30 s for a refusal that may last
// (a reporter on its cooldown leaves the filing to the others, and the
// case they file judges its offence too).
var fileRetry = backoff.Policy{Initial: 50 * time.Millisecond, Max: 30 * time.Second}

func newOffence(leader protocol.Address, epoch uint64, pu protocol.Punish) *offence {
	return &offence{leader: leader, epoch: epoch, pu: pu, bo: backoff.New(fileRetry), judged: make(chan struct{})}
}

// saveLocked writes the offences file whole, synced, in place of the old.
func (p *punishment) saveLocked() error {
	e := protocol.NewEncoder(1024)
	for _, o := range p.offences {
		if !o.own {
			e.Bytes(protocol.Marshal(&o.pu))
		}
	}
	tmp := p.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(e.Out())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, p.path)
}

// fileable reports whether ev proves a wrong result on chain: an entry's
// result, signed by a leader other than this node, that differs from this
// member's; or two batches such a leader signed for one height.
func fileable(ev *fsm.Evidence, self protocol.Address) bool {
	if ev.Index < 0 || len(ev.Batch) == 0 || ev.Leader.IsZero() || ev.Leader == self {
		return false
	}
	if ev.Reason == fsm.ReasonEquivocation {
		return len(ev.Conflict) > 0
	}
	return ev.Claimed != ev.Honest
}

// holds reports whether o holds the later batches of its epoch: every
// offence but equivocation (punish_equivocation.go).
func (o *offence) holds() bool { return len(o.pu.Conflict) == 0 }

// offend records ev as an offence, unless the epoch has one already, and
// keeps it on disk (err says it could not). It runs on the apply path,
// under the machine lock: one small synced write per offence.
func (p *punishment) offend(ev *fsm.Evidence) (added bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range p.offences {
		if o.leader == ev.Leader && o.epoch == ev.Epoch {
			return false, nil
		}
	}
	o := newOffence(ev.Leader, ev.Epoch, ev.Punish())
	for _, r := range p.resynced {
		if r.leader == ev.Leader && r.epoch == ev.Epoch {
			// A case of this epoch failed and this member resynced:
			// its own execution differs from the others' again.
			o.own = true
			close(o.judged)
			break
		}
	}
	p.offences = append(p.offences, o)
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return true, p.saveLocked()
}

// held returns the offence a batch waits for: one of its epoch and leader
// at a height before it.
func (p *punishment) held(b *protocol.Batch) *offence {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range p.offences {
		if o.holds() && o.leader == b.Leader && o.epoch == b.Epoch && o.pu.Height < b.FirstHeight {
			return o
		}
	}
	return nil
}

// state reports whether an offence waits for the chain's judgement
// (holding), and whether one was judged against this member (diverged).
func (p *punishment) state() (holding, diverged bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range p.offences {
		switch {
		case !o.holds():
		case !o.isJudged():
			holding = true
		case !o.guilty:
			diverged = true
		}
	}
	return holding, diverged
}

// resolve drops o, once this member resynced past it, and keeps the
// rest on disk.
func (p *punishment) resolve(o *offence) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.offences = slices.DeleteFunc(p.offences, func(x *offence) bool { return x == o })
	p.resynced = append(p.resynced, o)
	return p.saveLocked()
}

func (p *punishment) list() []*offence {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*offence(nil), p.offences...)
}

// errEpochPunished refuses the batches of an epoch after the offence its
// leader was punished for.
var errEpochPunished = errors.New("cluster: the epoch's leader was punished for an earlier batch")

// hold waits, for a batch of an epoch with an offence before it, until the
// chain judges the offence. It returns the refusal of the batch when the
// punishment executed. When the case failed it resyncs this member and
// returns nil: the batch applies, or is refused as below the new state.
// It returns ctx's error when ctx ends first, and when a resync fails it
// waits for ctx (resync).
func (c *Channel) hold(ctx context.Context, b *protocol.Batch) (refusal, err error) {
	o := c.punish.held(b)
	if o == nil {
		return nil, nil
	}
	select {
	case <-o.judged:
	default:
		c.logger.Warn("holding the batches of an epoch with an offence until the chain judges it",
			"leader", o.leader, "epoch", o.epoch, "offence_height", o.pu.Height, "batch", b.FirstHeight)
		defer c.waitingOnChain()()
		select {
		case <-o.judged:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if o.guilty {
		return fmt.Errorf("%w: batch %d of epoch %d after height %d", errEpochPunished, b.FirstHeight, b.Epoch, o.pu.Height), nil
	}
	if o.own {
		c.metrics.punishments.WithLabelValues("resync_failed").Inc()
		c.logger.Error("this member's own execution differs from the channel's again after it resynced: "+
			"it applies nothing more and files nothing; check its build and contract code, then restart it",
			"leader", o.leader, "epoch", o.epoch, "height", o.pu.Height, "reason", o.pu.Reason)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, c.resync(ctx, o, b)
}

// resync replaces this member's machine, after its case against the
// leader failed, with an honest member's: the state the chain settled at
// or after the offence's height, checked against the chain's settled
// state hash, and the leader-signed batches since, re-executed here
// (fetchChecked). The settlement is the others' word: it passed with the
// votes of at least 2/3 of the members, and an honest member's own state
// does not get past the offence without it. b is the batch held: the
// snapshot is of its first height - 1 at least, so the log goes on from
// it. resync returns nil once the machine is replaced; on ctx's end, ctx's
// error.
//
// When every member's snapshot re-executes otherwise here, this member's
// execution is wrong beyond the offence (a bug, a corrupt install): it
// applies nothing more, says so, and files nothing (the offence is judged,
// and offences are muted while it re-executes). It tries again when it
// starts again.
func (c *Channel) resync(ctx context.Context, o *offence, b *protocol.Batch) error {
	defer c.waitingOnChain()()
	c.logger.Warn("resyncing from the settled state once the chain settles past the offence",
		"leader", o.leader, "epoch", o.epoch, "offence_height", o.pu.Height, "batch", b.FirstHeight)
	t := time.NewTicker(c.cfg.ChainPollInterval)
	defer t.Stop()
	refreshed := c.view.refreshed() // re-armed as it fires: a read taken in meanwhile wakes the next round (settler)
	for c.chainSettled() < o.pu.Height {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-refreshed:
			refreshed = c.view.refreshed()
		case <-t.C:
			_ = c.refreshChain()
		}
	}
	bo := backoff.New(fileRetry)
	for {
		c.punish.muted.Store(true)
		ck, err := c.fsm.fetchChecked(b.FirstHeight-1, o.pu.Height, protocol.Address{})
		c.punish.muted.Store(false)
		if err == nil {
			c.fsm.install(ck)
			if err := c.punish.resolve(o); err != nil {
				c.logger.Error("cannot keep the offences on disk", "error", err)
			}
			c.metrics.punishments.WithLabelValues("resynced").Inc()
			c.logger.Warn("resynced from a member's snapshot after the failed case", "height", ck.height,
				"settled", ck.m.SettledHeight(), "leader", o.leader, "epoch", o.epoch)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrBadSnapshot) {
			c.metrics.punishments.WithLabelValues("resync_failed").Inc()
			c.logger.Error("cannot resync: this member's own execution of the others' batches differs from theirs. "+
				"It applies nothing more and files nothing; check its build and contract code, then restart it",
				"leader", o.leader, "epoch", o.epoch, "error", err)
			<-ctx.Done()
			return ctx.Err()
		}
		c.logger.Warn("cannot resync yet, trying again", "error", err)
		if !bo.Wait(ctx) {
			return ctx.Err()
		}
	}
}

// punishCase is a punish proposal of the channel that runPunishment
// follows until it closes.
type punishCase struct {
	id    uint64
	pu    protocol.Punish
	epoch uint64
	voted bool
	seen  time.Time
}

// runPunishment files this member's offences, votes on the channel's punish
// cases, executes those that passed and settles what their judgement
// decides. It learns of cases as runSettlement learns of settlements.
func (c *Channel) runPunishment(ctx context.Context) {
	t := time.NewTicker(c.cfg.ChainPollInterval)
	defer t.Stop()
	var cases []*punishCase
	var scan proposalScan
	refreshed := c.view.refreshed() // re-armed as it fires: a read taken in meanwhile wakes the next round (settler)
	for {
		select {
		case <-ctx.Done():
			return
		case <-refreshed:
			refreshed = c.view.refreshed()
		case <-c.punish.wake:
		case <-t.C:
		}
		for _, pid := range scan.next(c) {
			pc, read := c.readPunishCase(ctx, pid)
			if !read {
				scan.again(pid) // the next round reads it again
				break
			}
			if pc != nil {
				cases = append(cases, pc)
			}
		}
		for _, o := range c.punish.list() {
			c.fileOffence(ctx, o)
			// A case named by ErrDuplicateCase may be older than the
			// scan: follow it too.
			if o.pid != 0 && !o.isJudged() && !slices.ContainsFunc(cases, func(pc *punishCase) bool { return pc.id == o.pid }) {
				if pc, _ := c.readPunishCase(ctx, o.pid); pc != nil {
					cases = append(cases, pc)
				}
			}
		}
		kept := cases[:0]
		for _, pc := range cases {
			if !c.followCase(ctx, pc) {
				kept = append(kept, pc)
			}
		}
		cases = kept
	}
}

// readPunishCase returns the punish proposal pid if it is one (nil for
// another kind); read is false when the chain could not be read. A case
// already closed is followed once too: it may judge this member's offence.
func (c *Channel) readPunishCase(ctx context.Context, pid uint64) (pc *punishCase, read bool) {
	p, err := c.readProposal(ctx, pid)
	if err != nil {
		return nil, errors.Is(err, contract.ErrNoChannel)
	}
	if p.Kind != protocol.ProposalPunish {
		return nil, true
	}
	pc = &punishCase{id: pid, seen: time.Now()}
	if protocol.Unmarshal(p.Data, &pc.pu) != nil {
		return nil, true
	}
	b, err := protocol.DecodeBatch(pc.pu.Batch)
	if err != nil {
		return nil, true
	}
	pc.epoch = b.Epoch
	c.logger.Info("punish case seen", "status", p.Status, "proposal", pid, "target", pc.pu.Target, "epoch", pc.epoch,
		"height", pc.pu.Height, "reporter", p.Proposer, "reason", pc.pu.Reason)
	return pc, true
}

// fileOffence files o's case when it has none, at most once per backoff
// step. On ErrDuplicateCase it votes for the case named instead.
func (c *Channel) fileOffence(ctx context.Context, o *offence) {
	if o.isJudged() || o.pid != 0 || time.Now().Before(o.next) {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	pid, err := c.cfg.Chain.CreateProposal(cctx, c.id, protocol.ProposalPunish, protocol.Marshal(&o.pu))
	switch {
	case err == nil:
		o.pid = pid
		c.metrics.punishments.WithLabelValues("filed").Inc()
		c.logger.Warn("punish proposal filed", "proposal", pid, "target", o.leader, "epoch", o.epoch, "height", o.pu.Height, "reason", o.pu.Reason)
		return
	case errors.Is(err, contract.ErrDuplicateCase):
		if id, ok := caseNamed(err); ok {
			o.pid = id
			c.logger.Info("the offence has its case already: voting for it", "proposal", id, "target", o.leader)
			c.castVote(id, protocol.VoteFor)
			return
		}
	case errors.Is(err, contract.ErrNotMember) && c.punished(ctx, o):
		// The target is gone already (a case at another height of the
		// epoch): its epoch is over.
		c.logger.Info("the offence's leader is gone from the channel", "target", o.leader, "epoch", o.epoch)
		c.judgeOffence(o, true)
		return
	}
	if ctx.Err() == nil {
		c.logger.Warn("punish proposal refused, trying again", "target", o.leader, "epoch", o.epoch, "error", err)
	}
	o.next = time.Now().Add(o.bo.Next())
}

// caseNamed reads the proposal id an ErrDuplicateCase names.
func caseNamed(err error) (uint64, bool) {
	msg := err.Error()
	i := strings.Index(msg, "proposal ")
	if i < 0 {
		return 0, false
	}
	var id uint64
	if _, err := fmt.Sscanf(msg[i:], "proposal %d", &id); err != nil || id == 0 {
		return 0, false
	}
	return id, true
}

// punished reports whether o's epoch is over on chain with its leader out
// of the channel: it is no member and the chain's epoch is past o's.
func (c *Channel) punished(ctx context.Context, o *offence) bool {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
	defer cancel()
	info, err := c.cfg.Chain.Channel(cctx, c.id)
	if err != nil {
		return false
	}
	_, member := info.Member(o.leader)
	return !member && info.Epoch > o.epoch
}

// judgeOffence ends o's hold.
func (c *Channel) judgeOffence(o *offence, guilty bool) {
	c.punish.mu.Lock()
	defer c.punish.mu.Unlock()
	select {
	case <-o.judged:
		return
	default:
	}
	o.guilty = guilty
	close(o.judged)
	if guilty {
		c.logger.Warn("offence judged: the leader was punished; its later batches of the epoch are void", "leader", o.leader, "epoch", o.epoch)
		return
	}
	c.metrics.punishments.WithLabelValues("diverged").Inc()
	c.logger.Error("this member's case failed: its own execution disagrees with the channel's. "+
		"It resyncs from the members' settled state",
		"leader", o.leader, "epoch", o.epoch, "height", o.pu.Height)
}

// followCase votes on, executes and settles one case; it reports whether
// the case needs no more following.
func (c *Channel) followCase(ctx context.Context, pc *punishCase) bool {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
	p, err := c.cfg.Chain.Proposal(cctx, c.id, pc.id)
	cancel()
	if err != nil {
		return false
	}
	mine := c.offenceOf(pc)
	switch p.Status {
	case contract.ProposalExecuted:
		c.caseExecuted(ctx, pc, mine)
		return true
	case contract.ProposalFailed:
		c.logger.Warn("punish case failed", "proposal", pc.id, "target", pc.pu.Target, "for", p.For, "against", p.Against, "abstain", p.Abstain)
		// Only the case of this very offence judges it: another case of
		// the epoch may have failed for its own reasons. Failed without a
		// vote against (abstentions only) judges it too: the others could
		// not find this member's result, and the chain keeps the case
		// decided.
		if mine != nil && mine.pu.Height == pc.pu.Height {
			c.judgeOffence(mine, false)
		}
		return true
	case contract.ProposalOpen:
	default:
		return true
	}
	if !pc.voted && slices.Contains(p.Voters, c.me()) {
		pc.voted = c.judgeCase(pc, p)
	}
	if p.Passed(0) {
		cctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
		err := c.cfg.Chain.ExecuteProposal(cctx, c.id, pc.id)
		cancel()
		switch {
		case err == nil:
			c.logger.Warn("punishment executed", "proposal", pc.id, "target", pc.pu.Target)
			_ = c.refreshChain()
		case errors.Is(err, contract.ErrProposalClosed):
		default:
			if ctx.Err() == nil {
				c.logger.Warn("cannot execute the punishment", "proposal", pc.id, "error", err)
			}
		}
		return false
	}
	if p.DeadlineMs != 0 && c.chainNowMs(ctx) > p.DeadlineMs {
		// Voting closed undecided: not enough members found the
		// reporter's result. The reporter resyncs as for a case voted
		// down, rather than file again with the same turnout.
		c.logger.Warn("punish case expired undecided", "proposal", pc.id, "for", p.For, "of", p.ElectorateSize())
		if mine != nil && mine.pu.Height == pc.pu.Height {
			c.judgeOffence(mine, false)
		}
		return true
	}
	return false
}

// chainNowMs returns the chain's time, or 0 when it cannot be read.
func (c *Channel) chainNowMs(ctx context.Context) int64 {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
	defer cancel()
	h, err := c.cfg.Chain.Head(cctx)
	if err != nil {
		return 0
	}
	return h.TimeMs
}

// offenceOf returns this member's offence that pc judges: same target and
// epoch (an executed case at any height of the epoch ends it).
func (c *Channel) offenceOf(pc *punishCase) *offence {
	for _, o := range c.punish.list() {
		if o.leader == pc.pu.Target && o.epoch == pc.epoch {
			return o
		}
	}
	return nil
}

// judgeCase votes on an open case by this member's own execution. It
// reports whether the vote is cast (or needs no retry).
func (c *Channel) judgeCase(pc *punishCase, p *settlement.ProposalInfo) bool {
	for _, v := range p.Votes {
		if v.Voter == c.me() {
			return true
		}
	}
	var verdict fsm.Verdict
	var why string
	var height uint64
	if len(pc.pu.Conflict) > 0 {
		// Equivocation: the two signatures are the proof, the same check
		// as the chain's, whatever this member applied.
		verdict, why, height = fsm.VerdictGuilty, "two batches signed for one height", pc.pu.Height
		if err := contract.CheckEquivocation(c.id, pc.pu.Target, pc.pu.Height, pc.pu.Batch, pc.pu.Conflict); err != nil {
			verdict, why = fsm.VerdictInnocent, err.Error()
		}
	} else {
		c.fsm.machine(func(m *fsm.Machine) {
			if m != nil {
				verdict, why = m.JudgePunish(&pc.pu)
				height = m.Height()
			}
		})
	}
	opt := protocol.VoteAbstain
	switch verdict {
	case fsm.VerdictGuilty:
		opt = protocol.VoteFor
	case fsm.VerdictInnocent:
		opt = protocol.VoteAgainst
	default:
		if height < pc.pu.Height && time.Since(pc.seen) < c.cfg.SettleTimeout {
			return false // not there yet
		}
	}
	c.logger.Warn("judging a punish case", "proposal", pc.id, "target", pc.pu.Target, "height", pc.pu.Height,
		"verdict", verdict.String(), "why", why, "vote", opt.String())
	if !c.castVote(pc.id, opt) {
		return false
	}
	c.metrics.punishments.WithLabelValues("vote_" + opt.String()).Inc()
	return true
}

// caseExecuted ends this member's hold on the punished epoch, and, when
// the punishment left this member alone in the channel, closes it.
func (c *Channel) caseExecuted(ctx context.Context, pc *punishCase, mine *offence) {
	c.metrics.punishments.WithLabelValues("executed").Inc()
	if mine != nil {
		c.judgeOffence(mine, true)
	}
	if pc.pu.Target == c.me() {
		// Forced out: this node has nothing more to do in the channel, and
		// the others refuse its Raft traffic.
		c.logger.Error("this member was punished and forced out of the channel", "proposal", pc.id, "reason", pc.pu.Reason)
		c.retire(RetiredLeft)
		return
	}
	if err := c.refreshChain(); err != nil {
		return
	}
	info := c.view.members()
	if info == nil || len(info.Members) != 1 || info.Members[0].Address != c.me() {
		return
	}
	c.closeAlone(ctx)
}

// closeAlone ends a channel that a punishment left with this member alone:
// Raft cannot commit without the member that is gone, so the channel
// cannot go on. It settles the journal up to the last height this member
// applied (its own honest results) and closes the channel on chain; the
// membership loop then retires it here. With one member the settlement
// passes on this member's vote.
func (c *Channel) closeAlone(ctx context.Context) {
	c.logger.Warn("the punishment left this member alone: settling and closing the channel")
	bo := backoff.New(chainRetry)
	for ctx.Err() == nil {
		if err := c.settleAlone(ctx); err == nil {
			break
		} else {
			c.logger.Warn("cannot settle the channel alone", "error", err)
		}
		if !bo.Wait(ctx) {
			return
		}
	}
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
		err := c.cfg.Chain.CloseChannel(cctx, c.id)
		cancel()
		if err == nil || errors.Is(err, contract.ErrChannelClosed) {
			c.logger.Info("channel closed on chain after the punishment", "settled", c.chainSettled())
			_ = c.refreshChain()
			return
		}
		c.logger.Warn("cannot close the channel", "error", err)
		if !bo.Wait(ctx) {
			return
		}
	}
}

// settleAlone settles the journal from the chain's settled height to the
// applied height, one proposal at a time.
func (c *Channel) settleAlone(ctx context.Context) error {
	for {
		if err := c.refreshChain(); err != nil {
			return err
		}
		settled := c.chainSettled()
		var s protocol.Settlement
		var err error
		done := false
		c.fsm.machine(func(m *fsm.Machine) {
			switch {
			case m == nil:
				err = ErrNotReady
			case m.Height() <= settled:
				done = true
			default:
				s, err = buildSettlement(m, settled+1, m.Height(), c.cfg.SettleMaxHeights, c.cfg.SettleMaxBytes)
			}
		})
		if done || err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
		pid, err := c.cfg.Chain.CreateProposal(cctx, c.id, protocol.ProposalSettlement, protocol.Marshal(&s))
		if err == nil {
			err = c.cfg.Chain.Vote(cctx, c.id, pid, protocol.VoteFor)
		}
		if err == nil {
			err = c.cfg.Chain.ExecuteProposal(cctx, c.id, pid)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("settle %d..%d: %w", s.From, s.To, err)
		}
		c.logger.Info("settled alone", "proposal", pid, "from", s.From, "to", s.To)
	}
}
