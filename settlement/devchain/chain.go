package devchain

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// bbolt buckets. Each block is written in one bbolt transaction: the state
// writes of its txs, the nonces, the block itself, its events and the head.
var (
	bucketState  = []byte("state")  // contract.Store keys → values
	bucketNonces = []byte("nonces") // address → last used nonce
	bucketBlocks = []byte("blocks") // u64be height → Block
	bucketEvents = []byte("events") // u64be block ‖ u32be index → event
	bucketMeta   = []byte("meta")   // "head" → u64be height ‖ u64be time (ms)
	keyHead      = []byte("head")
)

// Outcome is what became of a submitted tx.
type Outcome struct {
	TxHash protocol.Hash
	// Block and Index place the tx; Block is 0 when the tx was refused
	// before execution (bad signature, used nonce) and is in no block.
	Block  uint64
	Index  uint32
	TimeMs int64
	// Err is the refusal, nil when the call was accepted.
	Err     error
	Receipt Receipt
	Events  []settlement.Event
}

// Chain is the embedded development settlement chain: the contract rules
// in blocks, persisted with bbolt. Its methods are safe for concurrent use.
// Blocks are produced by one goroutine (or by ProduceBlock); submitters wait
// for the block holding their tx.
type Chain struct {
	cfg     Config
	log     hclog.Logger
	db      *bolt.DB
	machine *contract.Machine
	params  contract.Params // fixed at genesis

	produceMu sync.Mutex // one block at a time

	mu struct {
		sync.Mutex
		pending  []*pendingTx
		head     Block // txs not kept
		headHash protocol.Hash
		newBlock chan struct{}
		closed   bool
	}

	stopCh    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

type pendingTx struct {
	tx     *SignedTx
	raw    []byte
	done   chan Outcome
	waited int
}

// Open opens (or creates) the chain in cfg.Dir and, when cfg.BlockInterval
// is positive, starts producing blocks.
func Open(cfg Config) (*Chain, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("devchain: %w", err)
	}
	db, err := bolt.Open(filepath.Join(cfg.Dir, "chain.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: cfg.NoSync})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("devchain: open %s: chain.db is in use by another process (another scraft chain on the same --data?)", cfg.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("devchain: open %s: %w", cfg.Dir, err)
	}
	c := &Chain{cfg: cfg, log: cfg.Logger.Named("devchain"), db: db, machine: contract.New(contract.DefaultParams()), stopCh: make(chan struct{})}
	c.mu.newBlock = make(chan struct{})
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketState, bucketNonces, bucketBlocks, bucketEvents, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		h := tx.Bucket(bucketMeta).Get(keyHead)
		if err := c.loadParams(&boltStore{b: tx.Bucket(bucketState), inTx: true}, h == nil); err != nil {
			return err
		}
		if h == nil {
			c.mu.head.AppHash = contract.GenesisHash(c.params)
			return nil
		}
		if len(h) != 16 {
			return fmt.Errorf("head record of %d bytes", len(h))
		}
		raw := tx.Bucket(bucketBlocks).Get(h[:8])
		if raw == nil {
			return fmt.Errorf("head block %x missing", h)
		}
		b, err := DecodeBlock(raw)
		if err != nil {
			return fmt.Errorf("head block: %w", err)
		}
		c.mu.head = Block{Height: b.Height, TimeMs: b.TimeMs, Prev: b.Prev, AppHash: b.AppHash}
		c.mu.headHash = b.Hash()
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("devchain: %w", err)
	}
	c.log.Info("chain opened", "dir", cfg.Dir, "height", c.mu.head.Height, "block_interval", cfg.BlockInterval,
		"heartbeat_ttl", c.params.HeartbeatTTL, "ban", c.params.BanDuration, "vote_window", c.params.VoteWindow,
		"censorship_window", c.params.CensorshipWindow, "report_cooldown", c.params.ReportCooldown)
	if cfg.BlockInterval > 0 {
		c.wg.Add(1)
		go c.run()
	}
	return c, nil
}

// loadParams reads the chain's settings from st, or, for a new chain
// (fresh), stores cfg.Params (the defaults when zero) as its genesis.
// Settings given for an existing chain must be the ones it holds: a chain's
// settings never change, and a validator started with others would
// compute another state than its peers.
func (c *Chain) loadParams(st contract.Store, fresh bool) error {
	want := c.cfg.Params
	stored, ok := contract.GetParams(st)
	switch {
	case ok:
	case fresh:
		stored = want
		if stored == (contract.Params{}) {
			stored = contract.DefaultParams()
		}
		if err := contract.InitGenesis(st, stored); err != nil {
			return err
		}
	default:
		// A chain from before its settings were stored ran with the
		// defaults; record them so that its state says so.
		stored = contract.DefaultParams()
		if want != (contract.Params{}) {
			stored.InitialBalance = want.InitialBalance
		}
		if err := contract.InitGenesis(st, stored); err != nil {
			return err
		}
	}
	if want != (contract.Params{}) && want != stored {
		return fmt.Errorf("%w: the chain was created with %+v, not %+v", ErrParamsDiffer, stored, want)
	}
	c.params = stored
	return nil
}

// Params returns the chain's settings, fixed at its genesis.
func (c *Chain) Params() contract.Params { return c.params }

// Close stops block production, refuses pending txs with ErrClosed and
// closes the database. It is safe to call more than once.
func (c *Chain) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.stopCh)
		c.wg.Wait()
		c.produceMu.Lock()
		c.mu.Lock()
		c.mu.closed = true
		pending := c.mu.pending
		c.mu.pending = nil
		c.mu.Unlock()
		for _, p := range pending {
			p.done <- Outcome{TxHash: p.tx.Hash(), Err: ErrClosed}
		}
		err = c.db.Close()
		c.produceMu.Unlock()
		c.log.Info("chain closed")
	})
	return err
}

func (c *Chain) run() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.BlockInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stopCh:
			return
		case <-t.C:
			if _, err := c.ProduceBlock(); err != nil && !errors.Is(err, ErrClosed) {
				c.log.Error("block production failed", "error", err)
			}
		}
	}
}

// Head returns the latest committed block's height and time.
func (c *Chain) Head() settlement.Head {
	c.mu.Lock()
	defer c.mu.Unlock()
	return settlement.Head{Height: c.mu.head.Height, TimeMs: c.mu.head.TimeMs}
}

// AppHash returns the state hash after the latest block.
func (c *Chain) AppHash() protocol.Hash {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.head.AppHash
}

// Submit queues an encoded signed tx and waits until a committed block
// holds it (or it is refused). A refusal is returned as the error and in
// Outcome.Err. If ctx ends first, the tx may still be included later.
func (c *Chain) Submit(ctx context.Context, raw []byte) (Outcome, error) {
	tx, err := DecodeTx(raw, c.cfg.MaxTxBytes)
	if err != nil {
		return Outcome{Err: err}, err
	}
	p := &pendingTx{tx: tx, raw: raw, done: make(chan Outcome, 1)}
	c.mu.Lock()
	switch {
	case c.mu.closed:
		c.mu.Unlock()
		return Outcome{Err: ErrClosed}, ErrClosed
	case len(c.mu.pending) >= c.cfg.MaxPending:
		c.mu.Unlock()
		err := fmt.Errorf("%w: %d", ErrBusy, c.cfg.MaxPending)
		return Outcome{Err: err}, err
	}
	c.mu.pending = append(c.mu.pending, p)
	c.mu.Unlock()
	select {
	case o := <-p.done:
		return o, o.Err
	case <-ctx.Done():
		return Outcome{TxHash: tx.Hash()}, ctx.Err()
	}
}

// ProduceBlock makes a block of the pending txs now (tests call it when
// BlockInterval is 0; it works alongside the timer too). It returns the new
// head.
func (c *Chain) ProduceBlock() (settlement.Head, error) {
	c.produceMu.Lock()
	defer c.produceMu.Unlock()
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return settlement.Head{}, ErrClosed
	}
	n := min(len(c.mu.pending), c.cfg.MaxBlockTxs)
	batch := c.mu.pending[:n:n]
	c.mu.pending = c.mu.pending[n:]
	prev, prevHash := c.mu.head, c.mu.headHash
	c.mu.Unlock()

	timeMs := max(prev.TimeMs+1, c.cfg.Clock.Now().UnixMilli())
	return c.produceLocked(batch, prev, prevHash, timeMs)
}

// produceLocked executes batch as the block after prev at timeMs, commits
// it and answers the submitters. The caller holds produceMu.
func (c *Chain) produceLocked(batch []*pendingTx, prev Block, prevHash protocol.Hash, timeMs int64) (settlement.Head, error) {
	started := time.Now()
	var r executed
	err := c.db.Update(func(btx *bolt.Tx) error {
		var err error
		r, err = c.execute(btx, batch, prev, prevHash, timeMs, false)
		return err
	})
	if err != nil {
		// Nothing was written: refuse the block's txs as closed or failed.
		for _, p := range batch {
			p.done <- Outcome{TxHash: p.tx.Hash(), Err: fmt.Errorf("devchain: block %d not committed: %w", prev.Height+1, err)}
		}
		return settlement.Head{}, fmt.Errorf("devchain: commit block %d: %w", prev.Height+1, err)
	}
	c.committed(&r)
	if took := time.Since(started); c.cfg.BlockInterval > 0 && took > c.cfg.BlockInterval {
		c.log.Warn("block took longer than the block interval", "height", r.block.Height, "txs", len(r.block.Txs), "took", took)
	} else if len(r.block.Txs) > 0 {
		c.log.Trace("block committed", "height", r.block.Height, "txs", len(r.block.Txs), "took", took)
	}
	return settlement.Head{Height: r.block.Height, TimeMs: r.block.TimeMs}, nil
}

// executed is a block run by execute, written to a bbolt transaction that
// is not committed yet.
type executed struct {
	block    *Block
	hash     protocol.Hash
	outcomes []deliver
	retry    []*pendingTx // waiting for earlier nonces (not final)
}

// execute runs batch as the block after prev at timeMs inside btx. A tx
// whose earlier nonces are not in the block waits for a later block, up to
// NonceGapBlocks; with final (the block was decided elsewhere and nothing
// waits) it is refused with ErrNonceGap at once.
func (c *Chain) execute(btx *bolt.Tx, batch []*pendingTx, prev Block, prevHash protocol.Hash, timeMs int64, final bool) (executed, error) {
	b := &Block{Height: prev.Height + 1, TimeMs: timeMs, Prev: prevHash}
	r := executed{block: b}
	sigOK := verifySignatures(batch)
	bw := &blockWriter{c: c, btx: btx, block: b, appHash: prev.AppHash, nonces: map[protocol.Address]uint64{}}
	var deferred []*pendingTx
	for i, p := range batch {
		if !sigOK[i] {
			r.outcomes = append(r.outcomes, deliver{p, Outcome{TxHash: p.tx.Hash(), Err: fmt.Errorf("%w: sender %s", ErrBadSignature, p.tx.Sender)}})
			continue
		}
		if o, ok := bw.apply(p); ok {
			r.outcomes = append(r.outcomes, deliver{p, o})
		} else {
			deferred = append(deferred, p)
		}
	}
	// A tx whose earlier nonces came later in the same block runs once
	// they have run.
	for progress := true; progress && len(deferred) > 0; {
		progress = false
		rest := deferred[:0]
		for _, p := range deferred {
			if o, ok := bw.apply(p); ok {
				r.outcomes = append(r.outcomes, deliver{p, o})
				progress = true
			} else {
				rest = append(rest, p)
			}
		}
		deferred = rest
	}
	for _, p := range deferred {
		if p.waited++; final || p.waited >= c.cfg.NonceGapBlocks {
			r.outcomes = append(r.outcomes, deliver{p, Outcome{TxHash: p.tx.Hash(), Err: fmt.Errorf("%w: nonce %d, next is %d", ErrNonceGap, p.tx.Nonce, bw.nextNonce(p.tx.Sender))}})
		} else {
			r.retry = append(r.retry, p)
		}
	}
	err := bw.finish()
	r.hash = bw.hash
	return r, err
}

// committed makes r, now committed, the head, wakes the watchers and
// answers the submitters.
func (c *Chain) committed(r *executed) {
	b := r.block
	c.mu.Lock()
	if len(r.retry) > 0 {
		c.mu.pending = append(r.retry, c.mu.pending...)
	}
	c.mu.head = Block{Height: b.Height, TimeMs: b.TimeMs, AppHash: b.AppHash, Prev: b.Prev}
	c.mu.headHash = r.hash
	close(c.mu.newBlock)
	c.mu.newBlock = make(chan struct{})
	c.mu.Unlock()
	for _, d := range r.outcomes {
		if d.o.Block != 0 {
			d.o.TimeMs = b.TimeMs
		}
		d.p.done <- d.o
	}
}

// verifySignatures batch-verifies the signatures of a block's txs, split
// over the available cores when the block is large.
func verifySignatures(batch []*pendingTx) []bool {
	items := make([]protocol.SigItem, len(batch))
	for i, p := range batch {
		items[i] = p.tx.sigItem()
	}
	const minChunk = 128
	parts := min(runtime.GOMAXPROCS(0), len(items)/minChunk)
	if parts <= 1 {
		return protocol.VerifyBatch(items)
	}
	ok := make([]bool, len(items))
	var wg sync.WaitGroup
	size := (len(items) + parts - 1) / parts
	for lo := 0; lo < len(items); lo += size {
		hi := min(lo+size, len(items))
		wg.Add(1)
		go func() {
			defer wg.Done()
			copy(ok[lo:hi], protocol.VerifyBatch(items[lo:hi]))
		}()
	}
	wg.Wait()
	return ok
}

type deliver struct {
	p *pendingTx
	o Outcome
}

// blockWriter executes txs into one bbolt transaction.
type blockWriter struct {
	c       *Chain
	btx     *bolt.Tx
	block   *Block
	appHash protocol.Hash
	writes  hash.Hash // this block's writes, for the AppHash; nil until one
	nonces  map[protocol.Address]uint64
	events  uint32
	hash    protocol.Hash // the block's hash, set by finish
}

func (bw *blockWriter) nextNonce(a protocol.Address) uint64 {
	n, ok := bw.nonces[a]
	if !ok {
		if v := bw.btx.Bucket(bucketNonces).Get(a[:]); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		bw.nonces[a] = n
	}
	return n + 1
}

// apply executes p if its nonce is the sender's next one. It reports false
// when p must wait for earlier nonces.
func (bw *blockWriter) apply(p *pendingTx) (Outcome, bool) {
	tx := p.tx
	o := Outcome{TxHash: tx.Hash()}
	next := bw.nextNonce(tx.Sender)
	switch {
	case tx.Nonce < next:
		o.Err = fmt.Errorf("%w: nonce %d, next is %d", ErrBadNonce, tx.Nonce, next)
		return o, true
	case tx.Nonce > next:
		return o, false
	}
	bw.nonces[tx.Sender] = tx.Nonce
	if bw.writes == nil {
		bw.writes = sha256.New()
		bw.writes.Write([]byte("scraft/apphash/v1\x00"))
		bw.writes.Write(bw.appHash[:])
	}
	e := protocol.NewEncoder(32)
	e.U8(0)
	e.Fixed(tx.Sender[:])
	e.U64(tx.Nonce)
	bw.writes.Write(e.Out())

	bt := BlockTx{Tx: p.raw, FirstEvent: bw.events}
	var rc contract.Receipt
	call, err := contract.DecodeCall(tx.Call)
	if err == nil {
		env := contract.Env{Height: bw.block.Height, TimeMs: bw.block.TimeMs, Sender: tx.Sender, SenderKey: tx.PublicKey, TxHash: o.TxHash}
		rc, err = bw.c.machine.Apply(&boltStore{b: bw.btx.Bucket(bucketState), inTx: true}, env, call)
	}
	o.Block, o.Index = bw.block.Height, uint32(len(bw.block.Txs))
	if err != nil {
		bt.Code, bt.Error, o.Err = ErrorCode(err), err.Error(), err
	} else {
		bt.Receipt = Receipt{Channel: rc.Channel, Proposal: rc.Proposal, JoinSeq: rc.JoinSeq, Epoch: rc.Epoch}
		o.Receipt = bt.Receipt
		for _, w := range rc.Writes {
			e := protocol.NewEncoder(16 + len(w.Key) + len(w.Value))
			e.U8(1)
			e.Bytes(w.Key)
			e.Bool(w.Value != nil)
			e.Bytes(w.Value)
			bw.writes.Write(e.Out())
		}
		events := bw.btx.Bucket(bucketEvents)
		for _, ev := range rc.Events {
			id := settlement.EventID{Block: bw.block.Height, Index: bw.events}
			se := settlement.Event{ID: id, TimeMs: bw.block.TimeMs, Event: ev}
			if err := events.Put(eventKey(id), encodeEvent(&se)); err != nil {
				panic(err) // only on a read-only or closed tx: a bug
			}
			o.Events = append(o.Events, se)
			bw.events++
		}
		bt.Events = uint32(len(rc.Events))
	}
	bw.block.Txs = append(bw.block.Txs, bt)
	return o, true
}

// finish writes the nonces, the block and the head.
func (bw *blockWriter) finish() error {
	nb := bw.btx.Bucket(bucketNonces)
	for a, n := range bw.nonces { // order does not matter: distinct keys
		if n == 0 {
			continue
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], n)
		if err := nb.Put(append([]byte(nil), a[:]...), v[:]); err != nil {
			return err
		}
	}
	if bw.writes != nil {
		copy(bw.block.AppHash[:], bw.writes.Sum(nil))
	} else {
		bw.block.AppHash = bw.appHash
	}
	h := u64key(bw.block.Height)
	raw := bw.block.Bytes()
	bw.hash = protocol.HashOf(domainBlock, raw)
	if err := bw.btx.Bucket(bucketBlocks).Put(h, raw); err != nil {
		return err
	}
	head := binary.BigEndian.AppendUint64(append([]byte(nil), h...), uint64(bw.block.TimeMs))
	return bw.btx.Bucket(bucketMeta).Put(keyHead, head)
}

func u64key(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func eventKey(id settlement.EventID) []byte {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], id.Block)
	binary.BigEndian.PutUint32(b[8:], id.Index)
	return b[:]
}

func encodeEvent(ev *settlement.Event) []byte {
	e := protocol.NewEncoder(200)
	e.U64(ev.ID.Block)
	e.U32(ev.ID.Index)
	e.I64(ev.TimeMs)
	ev.Event.Encode(e)
	return e.Out()
}

// DecodeEvent reads an event written by the chain.
func DecodeEvent(b []byte) (settlement.Event, error) {
	d := protocol.NewDecoder(b)
	var ev settlement.Event
	ev.ID.Block = d.U64()
	ev.ID.Index = d.U32()
	ev.TimeMs = d.I64()
	ev.Event.Decode(d)
	return ev, d.Finish()
}

// EncodeEvent returns an event's canonical encoding.
func EncodeEvent(ev *settlement.Event) []byte { return encodeEvent(ev) }

// boltStore is a bucket as a contract.Store. bbolt's values are valid only
// inside its transaction: queries get copies; a block's calls (inTx) get
// bbolt's own bytes, which the rules only decode (decoding copies) or test
// for nil, all inside the transaction.
type boltStore struct {
	b    *bolt.Bucket
	inTx bool
}

func (s *boltStore) Get(key []byte) []byte {
	v := s.b.Get(key)
	if v == nil || s.inTx {
		return v
	}
	return append([]byte{}, v...)
}

func (s *boltStore) Put(key, value []byte) {
	if err := s.b.Put(key, value); err != nil {
		panic(fmt.Sprintf("devchain: put: %v", err))
	}
}

func (s *boltStore) Delete(key []byte) {
	if err := s.b.Delete(key); err != nil {
		panic(fmt.Sprintf("devchain: delete: %v", err))
	}
}
