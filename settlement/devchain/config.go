package devchain

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/settlement/contract"
)

// Clock gives the chain its time; each block takes its time from it. Tests
// pass a ManualClock to move 15 s or 5 minutes at once.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock is the wall clock.
var SystemClock Clock = systemClock{}

// ManualClock is a Clock that moves only when told to.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a clock that reads start.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{now: start} }

// Now implements Clock.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Config configures a Chain.
type Config struct {
	// Dir holds the chain's bbolt file (chain.db). Required.
	Dir string
	// BlockInterval is the time between blocks. Default 200 ms. Zero makes
	// blocks only on ProduceBlock (tests).
	BlockInterval time.Duration
	// Clock gives block times. Default the wall clock. A block's time is the
	// clock's, but at least 1 ms after the previous block's.
	Clock Clock
	// Params are the settings of a new chain (contract.Params), fixed at
	// its genesis and kept in its state. Zero (the default) means
	// contract.DefaultParams() for a new chain and the stored settings for
	// an existing one; settings given for an existing chain must be the
	// ones it was created with.
	Params contract.Params
	// MaxTxBytes bounds one encoded tx. Default 8 MiB (code uploads).
	MaxTxBytes int
	// MaxBlockTxs bounds the txs of one block. Default 20,000.
	MaxBlockTxs int
	// MaxPending bounds the txs waiting for a block. Default 100,000.
	MaxPending int
	// NonceGapBlocks is how many blocks a tx waits for the sender's earlier
	// nonces before it is refused with ErrNonceGap. Default 50.
	NonceGapBlocks int
	// NoSync skips fsync on commit (tests only: a crash may lose blocks).
	NoSync bool
	// Logger receives the chain's logs. Default: a null logger.
	Logger hclog.Logger
}

// DefaultConfig returns the defaults for a chain stored in dir.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:            dir,
		BlockInterval:  200 * time.Millisecond,
		Clock:          SystemClock,
		MaxTxBytes:     8 << 20,
		MaxBlockTxs:    20_000,
		MaxPending:     100_000,
		NonceGapBlocks: 50,
		Logger:         hclog.NewNullLogger(),
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("devchain: Dir is required")
	case c.BlockInterval < 0:
		return fmt.Errorf("devchain: BlockInterval (%s) cannot be negative", c.BlockInterval)
	case c.Clock == nil:
		return fmt.Errorf("devchain: Clock is required")
	case c.MaxTxBytes < 1024:
		return fmt.Errorf("devchain: MaxTxBytes (%d) must be at least 1024", c.MaxTxBytes)
	case c.MaxBlockTxs < 1:
		return fmt.Errorf("devchain: MaxBlockTxs (%d) must be positive", c.MaxBlockTxs)
	case c.MaxPending < c.MaxBlockTxs:
		return fmt.Errorf("devchain: MaxPending (%d) cannot be smaller than MaxBlockTxs (%d)", c.MaxPending, c.MaxBlockTxs)
	case c.NonceGapBlocks < 1:
		return fmt.Errorf("devchain: NonceGapBlocks (%d) must be positive", c.NonceGapBlocks)
	case c.Logger == nil:
		return fmt.Errorf("devchain: Logger is required")
	}
	if c.Params != (contract.Params{}) {
		if err := c.Params.Validate(); err != nil {
			return fmt.Errorf("devchain: Params: %w", err)
		}
	}
	return nil
}
