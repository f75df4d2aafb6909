package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// meteredChain counts and times every call a node makes to its chain, by
// method and result, so an operator can tell a chain that refuses (the
// contract said no: normal in small numbers, such as a claim that lost a
// race) from one that does not answer.
//
//	scraft_chain_calls_total{method, result}  result: ok, refused, error, canceled
//	scraft_chain_call_seconds{method}         every call, whatever its result
type meteredChain struct {
	Chain
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// meterChain wraps chain with call metrics registered with reg.
func meterChain(chain Chain, reg prometheus.Registerer) (Chain, error) {
	m := &meteredChain{
		Chain: chain,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "scraft", Name: "chain_calls_total",
			Help: "Calls to the settlement chain, by method and result: ok, refused (a contract error), error (no answer or a transport error), canceled (the caller gave up)."},
			[]string{"method", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "scraft", Name: "chain_call_seconds",
			Help:    "Time a settlement chain call took, whatever its result.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"method"}),
	}
	for _, c := range []prometheus.Collector{m.calls, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// chainResult names the outcome of a chain call for the calls counter.
func chainResult(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return "ok"
	case contract.Code(err) != 0:
		return "refused"
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "error"
	}
}

// metered runs call, one chain call named method, and records it.
func metered[T any](ctx context.Context, m *meteredChain, method string, call func() (T, error)) (T, error) {
	start := time.Now()
	v, err := call()
	m.duration.WithLabelValues(method).Observe(time.Since(start).Seconds())
	m.calls.WithLabelValues(method, chainResult(ctx, err)).Inc()
	return v, err
}

// meteredErr is metered for a call that returns only an error.
func meteredErr(ctx context.Context, m *meteredChain, method string, call func() error) error {
	_, err := metered(ctx, m, method, func() (struct{}, error) { return struct{}{}, call() })
	return err
}

func (m *meteredChain) Channel(ctx context.Context, id protocol.ChannelID) (*settlement.ChannelInfo, error) {
	return metered(ctx, m, "channel", func() (*settlement.ChannelInfo, error) { return m.Chain.Channel(ctx, id) })
}

func (m *meteredChain) Code(ctx context.Context, hash protocol.Hash) ([]byte, error) {
	return metered(ctx, m, "code", func() ([]byte, error) { return m.Chain.Code(ctx, hash) })
}

func (m *meteredChain) InitialState(ctx context.Context, id protocol.ChannelID) (protocol.State, error) {
	return metered(ctx, m, "initial_state", func() (protocol.State, error) { return m.Chain.InitialState(ctx, id) })
}

func (m *meteredChain) Departure(ctx context.Context, id protocol.ChannelID, joinSeq uint64) (*contract.Departure, error) {
	return metered(ctx, m, "departure", func() (*contract.Departure, error) { return m.Chain.Departure(ctx, id, joinSeq) })
}

func (m *meteredChain) EpochLeader(ctx context.Context, id protocol.ChannelID, epoch uint64) (*contract.EpochLeader, error) {
	return metered(ctx, m, "epoch_leader", func() (*contract.EpochLeader, error) { return m.Chain.EpochLeader(ctx, id, epoch) })
}

func (m *meteredChain) Join(ctx context.Context, id protocol.ChannelID, usePool bool) (uint64, error) {
	return metered(ctx, m, "join", func() (uint64, error) { return m.Chain.Join(ctx, id, usePool) })
}

func (m *meteredChain) KeepAlive(ctx context.Context, id protocol.ChannelID) error {
	return meteredErr(ctx, m, "keep_alive", func() error { return m.Chain.KeepAlive(ctx, id) })
}

func (m *meteredChain) Params(ctx context.Context) (contract.Params, error) {
	return metered(ctx, m, "params", func() (contract.Params, error) { return m.Chain.Params(ctx) })
}

func (m *meteredChain) SetNodeAddress(ctx context.Context, id protocol.ChannelID, addr string) error {
	return meteredErr(ctx, m, "set_node_address", func() error { return m.Chain.SetNodeAddress(ctx, id, addr) })
}

func (m *meteredChain) ClaimLeader(ctx context.Context, id protocol.ChannelID, epoch uint64, atts []protocol.Attestation) (uint64, error) {
	return metered(ctx, m, "claim_leader", func() (uint64, error) { return m.Chain.ClaimLeader(ctx, id, epoch, atts) })
}

func (m *meteredChain) TransferLeader(ctx context.Context, id protocol.ChannelID, epoch uint64, to protocol.Address) (uint64, error) {
	return metered(ctx, m, "transfer_leader", func() (uint64, error) { return m.Chain.TransferLeader(ctx, id, epoch, to) })
}

func (m *meteredChain) Delegate(ctx context.Context, id protocol.ChannelID, candidate protocol.Address) error {
	return meteredErr(ctx, m, "delegate", func() error { return m.Chain.Delegate(ctx, id, candidate) })
}

func (m *meteredChain) SubmitVotes(ctx context.Context, id protocol.ChannelID, proposal uint64, votes []protocol.Vote) error {
	return meteredErr(ctx, m, "submit_votes", func() error { return m.Chain.SubmitVotes(ctx, id, proposal, votes) })
}

func (m *meteredChain) Head(ctx context.Context) (settlement.Head, error) {
	return metered(ctx, m, "head", func() (settlement.Head, error) { return m.Chain.Head(ctx) })
}

func (m *meteredChain) Proposal(ctx context.Context, id protocol.ChannelID, proposal uint64) (*settlement.ProposalInfo, error) {
	return metered(ctx, m, "proposal", func() (*settlement.ProposalInfo, error) { return m.Chain.Proposal(ctx, id, proposal) })
}

func (m *meteredChain) CreateProposal(ctx context.Context, id protocol.ChannelID, kind protocol.ProposalKind, data []byte) (uint64, error) {
	return metered(ctx, m, "create_proposal", func() (uint64, error) { return m.Chain.CreateProposal(ctx, id, kind, data) })
}

func (m *meteredChain) Vote(ctx context.Context, id protocol.ChannelID, proposal uint64, option protocol.VoteOption) error {
	return meteredErr(ctx, m, "vote", func() error { return m.Chain.Vote(ctx, id, proposal, option) })
}

func (m *meteredChain) ExecuteProposal(ctx context.Context, id protocol.ChannelID, proposal uint64) error {
	return meteredErr(ctx, m, "execute_proposal", func() error { return m.Chain.ExecuteProposal(ctx, id, proposal) })
}

func (m *meteredChain) ProveInclusion(ctx context.Context, id protocol.ChannelID, proposal uint64, batch []byte) error {
	return meteredErr(ctx, m, "prove_inclusion", func() error { return m.Chain.ProveInclusion(ctx, id, proposal, batch) })
}

func (m *meteredChain) Watch(ctx context.Context, from settlement.EventID) (settlement.EventStream, error) {
	return metered(ctx, m, "watch", func() (settlement.EventStream, error) { return m.Chain.Watch(ctx, from) })
}

func (m *meteredChain) Leave(ctx context.Context, id protocol.ChannelID) error {
	return meteredErr(ctx, m, "leave", func() error { return m.Chain.Leave(ctx, id) })
}

func (m *meteredChain) CloseChannel(ctx context.Context, id protocol.ChannelID) error {
	return meteredErr(ctx, m, "close_channel", func() error { return m.Chain.CloseChannel(ctx, id) })
}
