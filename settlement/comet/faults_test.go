package comet

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// appHash returns validator i's AppHash after block h.
func (c *testNet) appHash(i int, h uint64) protocol.Hash {
	c.t.Helper()
	b, err := c.vals[i].Chain().Block(h)
	if err != nil {
		c.t.Fatalf("validator %d block %d: %v", i, h, err)
	}
	return b.AppHash
}

// agree checks that the running validators hold the same blocks up to the
// lowest head among them.
func (c *testNet) agree() {
	c.t.Helper()
	top := ^uint64(0)
	for _, v := range c.vals {
		if v != nil {
			top = min(top, v.Chain().Head().Height)
		}
	}
	for h := uint64(1); h <= top; h++ {
		var want *devchain.Block
		for i, v := range c.vals {
			if v == nil {
				continue
			}
			b, err := v.Chain().Block(h)
			if err != nil {
				c.t.Fatalf("validator %d block %d: %v", i, h, err)
			}
			if want == nil {
				want = b
			} else if b.Hash() != want.Hash() {
				c.t.Fatalf("validator %d block %d differs: app hash %s, want %s", i, h, b.AppHash, want.AppHash)
			}
		}
	}
}

// send makes a tx that writes state (a channel) through validator i.
func send(ctx context.Context, t *testing.T, cl *devchain.Client, n int) (protocol.ChannelID, error) {
	t.Helper()
	return cl.CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte(fmt.Sprintf("\x00asm %d", n))})
}

func TestOneOfFourDownChainGoesOnAndItCatchesUp(t *testing.T) {
	// Validator 3 dials the others when it comes back; validator 0 dials
	// nobody and waits for the others to redial it.
	for _, down := range []int{3, 0} {
		t.Run(fmt.Sprintf("validator %d", down), func(t *testing.T) {
			c := newTestNet(t, 4)
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			up := (down + 1) % 4
			cl := c.dial(up, chaintest.Key("creator"))
			if _, err := send(ctx, t, cl, 0); err != nil {
				t.Fatal(err)
			}
			c.stop(down)
			var last protocol.ChannelID
			for n := 1; n <= 3; n++ {
				id, err := send(ctx, t, cl, n)
				if err != nil {
					t.Fatalf("with one validator down: %v", err)
				}
				last = id
			}
			head := c.vals[up].Chain().Head().Height
			c.start(down)
			c.waitHeight(down, head, 20*time.Second)
			if _, err := c.vals[down].Chain().ChannelInfo(last); err != nil {
				t.Fatalf("restarted validator: %v", err)
			}
			c.agree()
		})
	}
}

func TestTwoOfFourDownHaltsAndResumes(t *testing.T) {
	c := newTestNet(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.dial(0, chaintest.Key("creator"))
	if _, err := send(ctx, t, cl, 0); err != nil {
		t.Fatal(err)
	}
	c.stop(2)
	c.stop(3)
	// Two of four hold half the voting power, short of the 2/3 a block
	// needs: a tx waits.
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	_, err := send(short, t, cl, 1)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with two of four down a tx was answered: %v", err)
	}
	stalled := c.vals[0].Chain().Head().Height
	c.start(3)
	// The tx waiting in the mempool is committed once three are up.
	id, err := send(ctx, t, cl, 2)
	if err != nil {
		t.Fatalf("after a validator came back: %v", err)
	}
	if h := c.vals[0].Chain().Head().Height; h <= stalled {
		t.Fatalf("height %d, stalled at %d", h, stalled)
	}
	c.waitHeight(3, c.vals[0].Chain().Head().Height, 10*time.Second)
	if _, err := c.vals[3].Chain().ChannelInfo(id); err != nil {
		t.Fatal(err)
	}
	c.agree()
}

// A validator that dies between CometBFT recording a block and the
// application committing it (or just after the application committed, before
// CometBFT saved its state) comes back through the handshake: CometBFT
// replays the block the application lacks, or only checks the hash of the
// one it has.
func TestCrashAroundCommitReplays(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run(fmt.Sprintf("after=%v", after), func(t *testing.T) {
			c := newTestNet(t, 4)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cl := c.dial(0, chaintest.Key("creator"))
			if _, err := send(ctx, t, cl, 0); err != nil {
				t.Fatal(err)
			}
			// A block applied while the validator still syncs blocks
			// (it starts so) panics outside consensus, which takes the
			// test process down: crash it in consensus only.
			testutil.Eventually(t, 15*time.Second, "validator 3 in consensus", func() bool {
				return !c.vals[3].node.ConsensusReactor().WaitSync()
			})
			at := c.vals[3].Chain().Head().Height + 2
			cp := &crashPoint{height: at, after: after}
			c.vals[3].app.crash.Store(cp)
			for n := 1; c.vals[0].Chain().Head().Height < at+2; n++ {
				if _, err := send(ctx, t, cl, n); err != nil {
					t.Fatal(err)
				}
			}
			want := at - 1
			if after {
				want = at
			}
			// The validator may lag the others: it reaches the crash
			// point in its own time.
			testutil.Eventually(t, 15*time.Second, "the validator's crash point", cp.hit.Load)
			if h := c.vals[3].Chain().Head().Height; h != want {
				t.Fatalf("crashed validator's state at %d, want %d", h, want)
			}
			c.stop(3)
			c.start(3)
			c.waitHeight(3, c.vals[0].Chain().Head().Height, 15*time.Second)
			c.agree()
		})
	}
}

// Two txs of one sender with the same nonce, sent to two validators at
// once: one is committed, and the other is answered too (refused), not
// left waiting for a block that will never hold it.
func TestSameNonceTwiceBothAnswered(t *testing.T) {
	c := newTestNet(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	k := chaintest.Key("twice")
	errs := make(chan error, 2)
	for i := range 2 {
		cl := c.dial(i, k)
		raw := devchain.NewTx(k, 1, &contract.Deposit{Amount: uint64(1 + i)}).Bytes()
		go func() {
			_, err := cl.SubmitRaw(ctx, raw)
			errs <- err
		}()
	}
	var ok, refused int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, devchain.ErrBadNonce):
			refused++
		default:
			t.Fatalf("unexpected answer: %v", err)
		}
	}
	if ok != 1 || refused != 1 {
		t.Fatalf("%d committed, %d refused", ok, refused)
	}
}
