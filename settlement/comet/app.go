package comet

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// App is the channel contract as a CometBFT application. Its state is a
// devchain.Chain that produces no blocks of its own: CometBFT decides each
// block, FinalizeBlock executes it (ExecuteBlock) and Commit commits it, so
// the rules, nonces, block records, events and AppHash are exactly the
// development chain's.
//
// CometBFT calls the consensus methods (FinalizeBlock, Commit) from one
// goroutine, and CheckTx from the mempool's; the local client creator
// serializes all of them. Queries go to Chain directly and read only
// committed state.
type App struct {
	abci.BaseApplication
	chain *devchain.Chain
	log   hclog.Logger

	mu struct {
		sync.Mutex
		pending *devchain.PendingBlock // executed, not committed
		txs     [][]byte               // the pending block's txs
		// waiters of txs submitted here, by sha256 of the tx's bytes (the
		// map is only looked up, never iterated).
		waiters map[[32]byte][]chan devchain.Outcome
	}

	// deferred counts, by sha256 of the tx, the proposals that left out a
	// tx for a nonce gap (PrepareProposal alone uses it; only looked up).
	deferred map[[32]byte]int

	// crash, when set (tests), panics in Commit at its height: before the
	// block is committed, or just after; the process stands as if it had
	// died there.
	crash atomic.Pointer[crashPoint]
}

type crashPoint struct {
	height uint64
	after  bool
	hit    atomic.Bool // set as it panics
}

// NewApp returns the application over chain, which must make no blocks of
// its own (BlockInterval 0).
func NewApp(chain *devchain.Chain, log hclog.Logger) *App {
	a := &App{chain: chain, log: log}
	a.mu.waiters = map[[32]byte][]chan devchain.Outcome{}
	return a
}

// Info reports the last committed block, so that CometBFT's handshake
// replays exactly the blocks the application has not committed.
func (a *App) Info(context.Context, *abci.InfoRequest) (*abci.InfoResponse, error) {
	h := a.chain.Head()
	resp := &abci.InfoResponse{Data: "scraft channel contract", Version: "1", LastBlockHeight: int64(h.Height)}
	if h.Height > 0 {
		ah := a.chain.AppHash()
		resp.LastBlockAppHash = ah[:]
	}
	return resp, nil
}

// InitChain accepts the genesis: the contract's state starts with the
// chain's settings (app_state, AppState), which the state was opened with,
// and nothing else (every account holds Params.InitialBalance when first
// used). The app hash it answers is contract.GenesisHash of the settings,
// the hash block 1's writes chain on.
func (a *App) InitChain(_ context.Context, req *abci.InitChainRequest) (*abci.InitChainResponse, error) {
	if req.InitialHeight > 1 {
		return nil, fmt.Errorf("comet: initial height %d: the chain starts at 1", req.InitialHeight)
	}
	p, err := ParseAppState(req.AppStateBytes)
	if err != nil {
		return nil, err
	}
	if have := a.chain.Params(); p != have {
		return nil, fmt.Errorf("comet: the genesis settings %+v are not the state's %+v", p, have)
	}
	h := contract.GenesisHash(p)
	return &abci.InitChainResponse{AppHash: h[:]}, nil
}

// CheckTx admits a tx to the mempool when it decodes, is signed by its
// sender and its nonce is not used yet. On recheck (after a block) only the
// nonce is checked again.
func (a *App) CheckTx(_ context.Context, req *abci.CheckTxRequest) (*abci.CheckTxResponse, error) {
	_, err := a.chain.CheckTx(req.Tx, req.Type == abci.CHECK_TX_TYPE_CHECK)
	if err != nil {
		return &abci.CheckTxResponse{Code: devchain.ErrorCode(err), Log: err.Error()}, nil
	}
	return &abci.CheckTxResponse{Code: abci.CodeTypeOK}, nil
}

// gapProposals is how many of this validator's proposals leave out a tx
// whose sender's earlier nonces are not in its mempool yet, before it
// proposes the tx anyway (to be refused with devchain.ErrNonceGap). A
// client sending several txs at once has them gossiped to the proposer in
// any order; waiting a few blocks lets the earlier ones arrive.
const gapProposals = 10

// PrepareProposal keeps the mempool's order and drops what does not fit.
// A tx whose sender's earlier nonces are neither used nor in the proposal
// waits in the mempool for a later block (up to gapProposals proposals):
// in the block it would be refused for the gap.
func (a *App) PrepareProposal(_ context.Context, req *abci.PrepareProposalRequest) (*abci.PrepareProposalResponse, error) {
	maxTx := a.chain.Config().MaxTxBytes
	decoded := make([]*devchain.SignedTx, len(req.Txs))
	// present holds the nonces each sender has in the proposal; next, the
	// first nonce past the run of them that follows the sender's last used
	// one. Both are only looked up.
	type senderNonce struct {
		sender protocol.Address
		nonce  uint64
	}
	present := map[senderNonce]bool{}
	for i, raw := range req.Txs {
		if tx, err := devchain.DecodeTx(raw, maxTx); err == nil {
			decoded[i] = tx
			present[senderNonce{tx.Sender, tx.Nonce}] = true
		}
	}
	next := map[protocol.Address]uint64{}
	nextOf := func(sender protocol.Address) uint64 {
		if n, ok := next[sender]; ok {
			return n
		}
		n := uint64(1)
		if acc, err := a.chain.AccountInfo(sender); err == nil {
			n = acc.NextNonce
		}
		for present[senderNonce{sender, n}] { // bounded by the proposal's txs
			n++
		}
		next[sender] = n
		return n
	}
	deferred := map[[32]byte]int{}
	var (
		txs  [][]byte
		size int64
	)
	for i, raw := range req.Txs {
		if tx := decoded[i]; tx != nil && tx.Nonce > nextOf(tx.Sender) {
			k := sha256.Sum256(raw)
			if n := a.deferred[k] + 1; n <= gapProposals {
				deferred[k] = n
				continue
			}
		}
		if size += int64(len(raw)); size > req.MaxTxBytes {
			break
		}
		txs = append(txs, raw)
	}
	a.deferred = deferred
	return &abci.PrepareProposalResponse{Txs: txs}, nil
}

// ProcessProposal accepts every proposal: a tx that is malformed, badly
// signed or out of nonce order is refused inside the block, the same way
// on every validator.
func (a *App) ProcessProposal(context.Context, *abci.ProcessProposalRequest) (*abci.ProcessProposalResponse, error) {
	return &abci.ProcessProposalResponse{Status: abci.PROCESS_PROPOSAL_STATUS_ACCEPT}, nil
}

// FinalizeBlock executes the decided block at the block header's time (BFT
// time: the weighted median of the validators' clocks) without committing
// it; Commit does.
func (a *App) FinalizeBlock(_ context.Context, req *abci.FinalizeBlockRequest) (*abci.FinalizeBlockResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mu.pending != nil {
		// A block executed but never committed: CometBFT decides again.
		a.mu.pending.Abort()
		a.mu.pending, a.mu.txs = nil, nil
	}
	pb, err := a.chain.ExecuteBlock(uint64(req.Height), req.Time.UnixMilli(), req.Txs)
	if err != nil {
		return nil, fmt.Errorf("comet: finalize block %d: %w", req.Height, err)
	}
	a.mu.pending, a.mu.txs = pb, req.Txs
	resp := &abci.FinalizeBlockResponse{TxResults: make([]*abci.ExecTxResult, len(req.Txs))}
	for i, o := range pb.Outcomes() {
		r := &abci.ExecTxResult{Code: devchain.ErrorCode(o.Err)}
		if o.Err != nil {
			r.Log = o.Err.Error()
			if r.Code == 0 {
				r.Code = 1
			}
		}
		resp.TxResults[i] = r
	}
	ah := pb.AppHash()
	resp.AppHash = ah[:]
	return resp, nil
}

// Commit commits the block FinalizeBlock executed and answers the txs
// submitted here that it holds.
func (a *App) Commit(context.Context, *abci.CommitRequest) (*abci.CommitResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	pb, txs := a.mu.pending, a.mu.txs
	if pb == nil {
		return nil, errors.New("comet: commit without a finalized block")
	}
	cp := a.crash.Load()
	if cp != nil && cp.height == pb.Height() && !cp.after {
		cp.hit.Store(true)
		panic(fmt.Sprintf("comet: test crash before committing block %d", cp.height))
	}
	a.mu.pending, a.mu.txs = nil, nil
	if err := pb.Commit(); err != nil {
		return nil, err
	}
	a.log.Trace("block committed", "height", pb.Height(), "txs", len(txs), "app_hash", pb.AppHash())
	if cp != nil && cp.height == pb.Height() && cp.after {
		cp.hit.Store(true)
		panic(fmt.Sprintf("comet: test crash after committing block %d", cp.height))
	}
	for i, o := range pb.Outcomes() {
		k := sha256.Sum256(txs[i])
		for _, w := range a.mu.waiters[k] {
			w <- o
		}
		delete(a.mu.waiters, k)
	}
	return &abci.CommitResponse{}, nil
}

// wait registers for the outcome of tx once a block holding it is
// committed. The returned func unregisters.
func (a *App) wait(tx []byte) (<-chan devchain.Outcome, func()) {
	k := sha256.Sum256(tx)
	ch := make(chan devchain.Outcome, 1)
	a.mu.Lock()
	a.mu.waiters[k] = append(a.mu.waiters[k], ch)
	a.mu.Unlock()
	return ch, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		ws := a.mu.waiters[k]
		for i, w := range ws {
			if w == ch {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(a.mu.waiters, k)
		} else {
			a.mu.waiters[k] = ws
		}
	}
}

// abort drops a block executed but not committed (on shutdown), so the
// chain can close.
func (a *App) abort() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mu.pending != nil {
		a.mu.pending.Abort()
		a.mu.pending, a.mu.txs = nil, nil
	}
}
