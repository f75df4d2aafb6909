package comet

import (
	"sync"

	dbm "github.com/cometbft/cometbft-db"
	cmtcfg "github.com/cometbft/cometbft/config"
)

// CometBFT's node closes its stores while some of its reactors' goroutines
// may still read them (the consensus reactor's per-peer maj23 query), and a
// read of a closed pebble store panics: in one process that holds several
// validators, or a validator and the rest of a node, one validator's stop
// would take the others down. closingDB makes a read after Close find
// nothing, which those goroutines take as "no such block" and then return.

// dbProvider opens CometBFT's stores as the config says, wrapped.
func dbProvider(ctx *cmtcfg.DBContext) (dbm.DB, error) {
	db, err := cmtcfg.DefaultDBProvider(ctx)
	if err != nil {
		return nil, err
	}
	return &closingDB{DB: db}, nil
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
