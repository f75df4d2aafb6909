package comet

import (
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble"
	dbm "github.com/cometbft/cometbft-db"
	cmtcfg "github.com/cometbft/cometbft/config"
	"github.com/hashicorp/go-hclog"
)

// CometBFT's node closes its stores while some of its reactors' goroutines
// may still read them (the consensus reactor's per-peer maj23 query), and a
// read of a closed pebble store panics: in one process that holds several
// validators, or a validator and the rest of a node, one validator's stop
// would take the others down. closingDB makes a read after Close find
// nothing, which those goroutines take as "no such block" and then return.

// dbProvider opens CometBFT's stores as the config says, wrapped. Pebble
// (the default backend) logs through log (its own logger would print WAL
// replays on every restart to stderr).
func dbProvider(log hclog.Logger) cmtcfg.DBProvider {
	return func(ctx *cmtcfg.DBContext) (dbm.DB, error) {
		var (
			db  dbm.DB
			err error
		)
		if dbm.BackendType(ctx.Config.DBBackend) == dbm.PebbleDBBackend {
			db, err = dbm.NewPebbleDBWithOpts(ctx.ID, ctx.Config.DBDir(), &pebble.Options{Logger: pebbleLogger{log}})
		} else {
			db, err = cmtcfg.DefaultDBProvider(ctx)
		}
		if err != nil {
			return nil, err
		}
		return &closingDB{DB: db}, nil
	}
}

type pebbleLogger struct{ log hclog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

type closingDB struct {
	dbm.DB
	mu     sync.RWMutex
	closed bool
}

func (d *closingDB) Get(key []byte) ([]byte, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return nil, nil
	}
	return d.DB.Get(key)
}

func (d *closingDB) Has(key []byte) (bool, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return false, nil
	}
	return d.DB.Has(key)
}

func (d *closingDB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return d.DB.Close()
}
