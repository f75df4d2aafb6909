package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
)

// Equivocation (DESIGN.md §7): a leader that signs two different batches
// of one epoch for the same height shows two members two histories. Raft
// cannot tell: a follower takes what its leader sends at an index. A
// member sees the other history when batches another member applied
// reach it: the batches a snapshot carries after its base, from the leader
// (InstallSnapshot) or from a member (fetchChecked). compareApplied
// compares them with the batches this member applied; the first conflict
// of a (leader, epoch) is evidence, and an offence filed as a punish case
// with both signed batches (protocol.Punish.Conflict), which the chain
// and every voter judge by the two signatures alone
// (contract.CheckEquivocation).
//
// The offence does not hold the epoch's later batches: this member's
// state is not in doubt, only which of two signed histories it was
// shown, and the snapshot that showed the other one replaces its state
// (it checked out: the base against the chain, its batches re-executed
// here). Every member goes on applying the same log, and the punishment,
// once executed, ends the epoch on chain.

// compareApplied compares the batches m (a machine restored from a
// snapshot that from sent, and checked) applied with those this member's
// machine applied, and records the first equivocation it finds. The caller
// holds feedMu.
func (f *machineFSM) compareApplied(m *fsm.Machine, from protocol.Address) {
	var own [][]byte
	f.machine(func(cur *fsm.Machine) {
		if cur != nil {
			own = cur.AppliedBatches()
		}
	})
	if ev := equivocation(own, m.AppliedBatches()); ev != nil {
		ev.Detail = fmt.Sprintf("the batch applied here and the one in %s's snapshot differ (heights %s)", from, ev.Detail)
		f.logger.Error("equivocation: the leader signed two batches for one height", "leader", ev.Leader,
			"epoch", ev.Epoch, "height", ev.Height, "from", from)
		f.recordEvidence(ev)
	}
}

// equivocation returns the evidence of the first height where a batch of
// theirs and one of own, signed by the same leader in the same epoch,
// differ; nil when none does. Both lists are in height order.
func equivocation(own, theirs [][]byte) *fsm.Evidence {
	i := 0
	var a *protocol.Batch
	for _, raw := range theirs {
		b, err := protocol.DecodeBatch(raw)
		if err != nil {
			return nil
		}
		for {
			if a == nil {
				if i == len(own) {
					return nil
				}
				if a, err = protocol.DecodeBatch(own[i]); err != nil {
					return nil
				}
			}
			if a.LastHeight() >= b.FirstHeight {
				break
			}
			a, i = nil, i+1
		}
		if a.FirstHeight > b.LastHeight() {
			continue // theirs is below what own holds
		}
		if a.Leader != b.Leader || a.Epoch != b.Epoch || bytes.Equal(own[i], raw) {
			continue
		}
		h := max(a.FirstHeight, b.FirstHeight)
		return &fsm.Evidence{Reason: fsm.ReasonEquivocation, Leader: a.Leader, Epoch: a.Epoch, Height: h,
			Index: int(h - a.FirstHeight), Batch: own[i], Conflict: raw, Entry: a.Entries[h-a.FirstHeight],
			Claimed: a.Results[h-a.FirstHeight], Detail: fmt.Sprintf("%d..%d and %d..%d", a.FirstHeight, a.LastHeight(), b.FirstHeight, b.LastHeight())}
	}
	return nil
}

// voidedBatches keeps the batches this node signed as leader of an epoch
// that Raft had not applied when its leadership ended (fsm DropPending).
// When it leads the same epoch again, it proposes them again as they were
// signed (leaderRun.resign) before it signs anything new: an honest
// leader never signs two bodies for one height of an epoch, so two such
// bodies are proof against it. They are kept on disk too (voidedFile), so
// a restart between losing and regaining the lead keeps them; a node that
// crashed while leading has them in its own Raft log, unless the next
// leader's log overwrote them there, which is left.
type voidedBatches struct {
	mu    sync.Mutex
	path  string
	epoch uint64
	raw   [][]byte
}

// voidedFile holds, in the channel's folder, the epoch and the voided
// batches, length-prefixed.
const voidedFile = "voided"

// init loads the batches kept in dir, if any.
func (v *voidedBatches) init(dir string) error {
	v.path = filepath.Join(dir, voidedFile)
	b, err := os.ReadFile(v.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	d := protocol.NewDecoder(b)
	v.epoch = d.U64()
	for d.Err() == nil && d.Remaining() > 0 {
		v.raw = append(v.raw, d.Bytes(protocol.MaxBatchBytes))
	}
	if err := d.Finish(); err != nil {
		return fmt.Errorf("%s: %w", v.path, err)
	}
	return nil
}

// saveLocked writes the file whole, synced, in place of the old.
func (v *voidedBatches) saveLocked() error {
	if v.path == "" {
		return nil
	}
	e := protocol.NewEncoder(1024)
	e.U64(v.epoch)
	for _, r := range v.raw {
		e.Bytes(r)
	}
	tmp := v.path + ".tmp"
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
	return os.Rename(tmp, v.path)
}

// keep adds, for epoch, the batches dropped when a run of it ended.
func (v *voidedBatches) keep(epoch uint64, bs []*protocol.Batch) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.epoch != epoch {
		v.epoch, v.raw = epoch, nil
	}
	for _, b := range bs {
		v.raw = append(v.raw, b.Bytes())
	}
	if len(bs) == 0 {
		return nil
	}
	return v.saveLocked()
}

// pending returns the batches kept for epoch.
func (v *voidedBatches) pending(epoch uint64) [][]byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.epoch != epoch {
		return nil
	}
	return slices.Clone(v.raw)
}

// done forgets the first n batches kept for epoch, proposed again and
// applied, or every batch of another epoch.
func (v *voidedBatches) done(epoch uint64, n int) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.epoch != epoch {
		n = len(v.raw)
	}
	if n == 0 {
		return nil
	}
	v.raw = v.raw[min(n, len(v.raw)):]
	return v.saveLocked()
}

// resign proposes again, in order and as they were signed, the batches of
// this run's epoch that an earlier run signed and Raft did not apply, and
// waits for each to apply. It reports whether the run may sign new
// batches; when one fails, the rest are kept for the next run and the run
// fails.
func (run *leaderRun) resign() bool {
	c := run.c
	raws := c.voided.pending(run.epoch)
	defer func() {
		if err := c.voided.done(run.epoch, len(raws)); err != nil {
			c.logger.Error("cannot keep the voided batches on disk", "error", err)
		}
	}()
	for i, raw := range raws {
		b, err := protocol.DecodeBatch(raw)
		if err != nil {
			continue
		}
		var height uint64
		c.fsm.machine(func(m *fsm.Machine) {
			if m != nil {
				height = m.Height()
			}
		})
		if b.LastHeight() <= height {
			continue // Raft applied it after all
		}
		if b.FirstHeight != height+1 {
			c.logger.Error("a batch signed earlier in the epoch does not follow the applied height: dropped",
				"epoch", run.epoch, "first_height", b.FirstHeight, "height", height)
			continue
		}
		c.logger.Info("proposing again a batch signed earlier in the epoch", "epoch", run.epoch, "first_height", b.FirstHeight)
		fut := c.raft.Apply(encodeLog(logBatch, raw), c.cfg.ApplyTimeout)
		err = fut.Error()
		if err == nil {
			if res, _ := fut.Response().(*applyResult); res != nil && res.err != nil {
				err = res.err
			}
		}
		if err != nil {
			c.logger.Warn("cannot propose again a batch signed earlier in the epoch", "first_height", b.FirstHeight, "error", err)
			raws = raws[:i] // the rest stay for the next run
			run.fail()
			return false
		}
	}
	return true
}
