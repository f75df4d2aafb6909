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

func (m *meteredChain) done(ctx context.Context, method string, start time.Time, err error) {
	m.duration.WithLabelValues(method).Observe(time.Since(start).Seconds())
	m.calls.WithLabelValues(method, chainResult(ctx, err)).Inc()
}

func (m *meteredChain) Channel(ctx context.Context, id protocol.ChannelID) (*settlement.ChannelInfo, error) {
	start := time.Now()
	v, err := m.Chain.Channel(ctx, id)
	m.done(ctx, "channel", start, err)
	return v, err
}

func (m *meteredChain) Code(ctx context.Context, hash protocol.Hash) ([]byte, error) {
	start := time.Now()
	v, err := m.Chain.Code(ctx, hash)
	m.done(ctx, "code", start, err)
	return v, err
}

func (m *meteredChain) InitialState(ctx context.Context, id protocol.ChannelID) (protocol.State, error) {
	start := time.Now()
	v, err := m.Chain.InitialState(ctx, id)
	m.done(ctx, "initial_state", start, err)
	return v, err
}

func (m *meteredChain) Departure(ctx context.Context, id protocol.ChannelID, joinSeq uint64) (*contract.Departure, error) {
	start := time.Now()
	v, err := m.Chain.Departure(ctx, id, joinSeq)
	m.done(ctx, "departure", start, err)
	return v, err
}

func (m *meteredChain) EpochLeader(ctx context.Context, id protocol.ChannelID, epoch uint64) (*contract.EpochLeader, error) {
	start := time.Now()
	v, err := m.Chain.EpochLeader(ctx, id, epoch)
	m.done(ctx, "epoch_leader", start, err)
	return v, err
}

func (m *meteredChain) Join(ctx context.Context, id protocol.ChannelID, usePool bool) (uint64, error) {
	start := time.Now()
	v, err := m.Chain.Join(ctx, id, usePool)
	m.done(ctx, "join", start, err)
	return v, err
}

func (m *meteredChain) KeepAlive(ctx context.Context, id protocol.ChannelID) error {
	start := time.Now()
	err := m.Chain.KeepAlive(ctx, id)
	m.done(ctx, "keep_alive", start, err)
	return err
}

func (m *meteredChain) Params(ctx context.Context) (contract.Params, error) {
	start := time.Now()
	v, err := m.Chain.Params(ctx)
	m.done(ctx, "params", start, err)
	return v, err
}

func (m *meteredChain) SetNodeAddress(ctx context.Context, id protocol.ChannelID, addr string) error {
	start := time.Now()
	err := m.Chain.SetNodeAddress(ctx, id, addr)
	m.done(ctx, "set_node_address", start, err)
	return err
}

func (m *meteredChain) ClaimLeader(ctx context.Context, id protocol.ChannelID, epoch uint64, atts []protocol.Attestation) (uint64, error) {
	start := time.Now()
	v, err := m.Chain.ClaimLeader(ctx, id, epoch, atts)
	m.done(ctx, "claim_leader", start, err)
	return v, err
}

func (m *meteredChain) TransferLeader(ctx context.Context, id protocol.ChannelID, epoch uint64, to protocol.Address) (uint64, error) {
	start := time.Now()
	v, err := m.Chain.TransferLeader(ctx, id, epoch, to)
	m.done(ctx, "transfer_leader", start, err)
	return v, err
}

func (m *meteredChain) Delegate(ctx context.Context, id protocol.ChannelID, candidate protocol.Address) error {
	start := time.Now()
	err := m.Chain.Delegate(ctx, id, candidate)
	m.done(ctx, "delegate", start, err)
	return err
}

func (m *meteredChain) SubmitVotes(ctx context.Context, id protocol.ChannelID, proposal uint64, votes []protocol.Vote) error {
	start := time.Now()
	err := m.Chain.SubmitVotes(ctx, id, proposal, votes)
	m.done(ctx, "submit_votes", start, err)
	return err
}

func (m *meteredChain) Head(ctx context.Context) (settlement.Head, error) {
	start := time.Now()
	v, err := m.Chain.Head(ctx)
	m.done(ctx, "head", start, err)
	return v, err
}

func (m *meteredChain) Proposal(ctx context.Context, id protocol.ChannelID, proposal uint64) (*settlement.ProposalInfo, error) {
	start := time.Now()
	v, err := m.Chain.Proposal(ctx, id, proposal)
	m.done(ctx, "proposal", start, err)
	return v, err
}

func (m *meteredChain) CreateProposal(ctx context.Context, id protocol.ChannelID, kind protocol.ProposalKind, data []byte) (uint64, error) {
	start := time.Now()
	v, err := m.Chain.CreateProposal(ctx, id, kind, data)
	m.done(ctx, "create_proposal", start, err)
	return v, err
}

func (m *meteredChain) Vote(ctx context.Context, id protocol.ChannelID, proposal uint64, option protocol.VoteOption) error {
	start := time.Now()
	err := m.Chain.Vote(ctx, id, proposal, option)
	m.done(ctx, "vote", start, err)
	return err
}

func (m *meteredChain) ExecuteProposal(ctx context.Context, id protocol.ChannelID, proposal uint64) error {
	start := time.Now()
	err := m.Chain.ExecuteProposal(ctx, id, proposal)
	m.done(ctx, "execute_proposal", start, err)
	return err
}

func (m *meteredChain) ProveInclusion(ctx context.Context, id protocol.ChannelID, proposal uint64, batch []byte) error {
	start := time.Now()
	err := m.Chain.ProveInclusion(ctx, id, proposal, batch)
	m.done(ctx, "prove_inclusion", start, err)
	return err
}

func (m *meteredChain) Watch(ctx context.Context, from settlement.EventID) (settlement.EventStream, error) {
	start := time.Now()
	v, err := m.Chain.Watch(ctx, from)
	m.done(ctx, "watch", start, err)
	return v, err
}

func (m *meteredChain) Leave(ctx context.Context, id protocol.ChannelID) error {
	start := time.Now()
	err := m.Chain.Leave(ctx, id)
	m.done(ctx, "leave", start, err)
	return err
}

func (m *meteredChain) CloseChannel(ctx context.Context, id protocol.ChannelID) error {
	start := time.Now()
	err := m.Chain.CloseChannel(ctx, id)
	m.done(ctx, "close_channel", start, err)
	return err
}
