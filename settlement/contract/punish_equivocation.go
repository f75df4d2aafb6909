package contract

import (
	"bytes"
	"fmt"

	"github.com/scraft/scraft/protocol"
)

// CheckEquivocation checks the proof of an equivocation case: two batches
// of channel ch, both signed by target (signatures verified), of one
// epoch, both covering height, whose signed bodies differ. It is a pure
// function of its arguments: the chain checks a case with it when the case
// is filed, and every member votes on the case by the same check (cluster
// judgeCase), so no member's vote depends on its own state.
//
// Why two signed bodies are proof by themselves: only the epoch's leader
// signs its batches, and an honest leader signs one body per height in an
// epoch. A batch it proposed that Raft did not apply is proposed again
// as it was signed, never signed anew (cluster, leader.go). A leader that
// signs two is showing two members two histories of the same height.
func CheckEquivocation(ch protocol.ChannelID, target protocol.Address, height uint64, a, b []byte) error {
	ba, err := protocol.DecodeBatch(a)
	if err != nil {
		return fmt.Errorf("%w: batch: %v", ErrBadEvidence, err)
	}
	bb, err := protocol.DecodeBatch(b)
	if err != nil {
		return fmt.Errorf("%w: conflicting batch: %v", ErrBadEvidence, err)
	}
	for _, x := range []*protocol.Batch{ba, bb} {
		switch {
		case x.Channel != ch:
			return fmt.Errorf("%w: batch is for channel %s", ErrBadEvidence, x.Channel)
		case x.Leader != target:
			return fmt.Errorf("%w: batch signed by %s, not the target %s", ErrBadEvidence, x.Leader, target)
		case height < x.FirstHeight || height > x.LastHeight():
			return fmt.Errorf("%w: height %d not in batch %d..%d", ErrBadEvidence, height, x.FirstHeight, x.LastHeight())
		}
		if err := x.VerifySignature(); err != nil {
			return fmt.Errorf("%w: batch signature: %v", ErrBadEvidence, err)
		}
	}
	if ba.Epoch != bb.Epoch {
		return fmt.Errorf("%w: batches of epochs %d and %d", ErrBadEvidence, ba.Epoch, bb.Epoch)
	}
	if bytes.Equal(ba.Body(), bb.Body()) {
		return fmt.Errorf("%w: the two batches are one", ErrBadEvidence)
	}
	return nil
}
